"""Issue 12, item 2, independent acceptance: the provisioning broker configuration
(provisioning/mosquitto-acl.conf, verbatim, behind TLS client certificates as in
provisioning/mosquitto-broker.conf) against a device that holds a genuine certificate
of its own (kiosk-02) and uses it for more than publishing on its own topic.

tests/sync/test_acl.py covers squatting, forged acks and sniffing by topic. What it
does not cover: the MQTT client id is not bound to the certificate, and a shared
subscription's group is open to anyone the ACL lets subscribe at all.

- Session takeover: kiosk-02 connects with the receiver's client id
  (central.client_id, "appliance-central" by default, printed in the README). mosquitto
  2.0 wipes the session when the username differs, so the records the broker had
  queued for the receiver while it was away are gone: the device waits for its ack
  timeout (here 60 s) before it sends them again. Repeated, the genuine receiver is
  kicked off at every connection of the attacker.
- Shared-group hijack: kiosk-02 subscribes to $share/central/bhxh/devices/+/records
  (the README's group name). mosquitto grants it, deals it its share of every
  device's messages round robin, then drops them at delivery (read ACL): those records
  and chunks reach no receiver, and wait for the devices' ack timeouts.

Neither loses a record for good (the device sends it again), which is why both are
pinned as delays: a genuine record that should be at the central office in a second
is not there after 8 s.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.certs import Pki, client_certificate, make_pki
from tests.helpers.mosquitto import TlsFiles
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    enqueue,
    make_config,
    outbox_state,
    probe,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
ACL = Path(__file__).resolve().parents[2] / "provisioning" / "mosquitto-acl.conf"
PROMPT_S = 8.0  # a queued record reaches a reconnected receiver in about a second


def _rig(tmp_path: Path, brokers, **central: object
         ) -> tuple[Pki, config_mod.Config, config_mod.Config, tuple[Path, Path, Path]]:
    """Broker with the provisioning ACL and client certificates; the device's config
    (kiosk-01), the receiver's (central.bhxh), and kiosk-02's TLS files."""
    pki = make_pki(tmp_path / "pki", client_cn="kiosk-01")
    central_cert, central_key = client_certificate(pki, "central.bhxh")
    other_cert, other_key = client_certificate(pki, "kiosk-02")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key),
                           anonymous=False, extra_config=f"acl_file {ACL}")
    device = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                         cert_file=str(pki.client_cert), key_file=str(pki.client_key),
                         ack_timeout_seconds=60.0, central=central or None)
    receiver = dataclasses.replace(device, mqtt=dataclasses.replace(
        device.mqtt, cert_file=str(central_cert), key_file=str(central_key)))
    return pki, device, receiver, (pki.ca_cert, other_cert, other_key)


def _session_client(port: int, client_id: str, tls: tuple[Path, Path, Path]) -> mqtt.Client:
    """A persistent-session MQTT v5 client, connected, as the services connect."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    wait_for(client.is_connected, 5, f"{client_id} connected")
    return client


@pytest.mark.xfail(strict=True, reason="BUG: a device certificate may connect under the "
                   "receiver's client id; mosquitto then wipes the receiver's session and "
                   "the records queued in it wait for the devices' ack timeout")
def test_a_device_taking_the_receivers_client_id_costs_no_queued_record(
        tmp_path: Path, brokers, services) -> None:
    _pki, device, central, mallory_tls = _rig(tmp_path, brokers)
    port = device.mqtt.port
    mallory = Attacker(port, client_id="kiosk-02", tls=mallory_tls)
    receiver = services(run_receiver, central)
    probe(lambda: mallory.publish("bhxh/devices/kiosk-02/records", b"["),
          lambda: central_counters(central).get("dead_letters", 0), "the receiver")
    receiver.stop()                       # its persistent session stays at the broker
    recs = enqueue(device, 2, pdf_sizes=(6_000,))
    publisher = services(run_publisher, device)
    wait_for(lambda: all(outbox_state(device, r.record_id) is OutboxState.SENDING
                         for r in recs), 10, "the records in flight")
    time.sleep(1.0)                       # queued for the receiver by now
    # kiosk-02, with its own genuine certificate, under the receiver's client id.
    thief = _session_client(port, central.central.client_id, mallory_tls)
    time.sleep(0.5)
    thief.disconnect()
    thief.loop_stop()
    services(run_receiver, central)
    deadline = time.monotonic() + PROMPT_S
    while time.monotonic() < deadline and not all_delivered(device, recs):
        time.sleep(0.1)
    mallory.close()
    assert all_delivered(device, recs), (
        f"queued records not delivered {PROMPT_S} s after the receiver came back: "
        "its session was taken over by kiosk-02")
    assert_exactly_once(device, recs)
    assert_no_false_delivery(device)
    assert publisher.running()


@pytest.mark.xfail(strict=True, reason="BUG: a device certificate may join the receivers' "
                   "shared subscription group; mosquitto deals it a share of every device's "
                   "messages and drops them (read ACL), so those records reach no receiver")
def test_a_device_joining_the_receivers_share_group_swallows_nothing(
        tmp_path: Path, brokers, services) -> None:
    _pki, device, central, mallory_tls = _rig(tmp_path, brokers, share_group="central",
                                              max_transfers_per_device=256)
    port = device.mqtt.port
    mallory = Attacker(port, client_id="kiosk-02", tls=mallory_tls)
    for n in range(2):
        services(run_receiver, dataclasses.replace(central, central=dataclasses.replace(
            central.central, client_id=f"central-{n}")))
    probe(lambda: mallory.publish("bhxh/devices/kiosk-02/records", b"["),
          lambda: central_counters(central).get("dead_letters", 0), "the receivers")
    # kiosk-02 joins the group the README names, three sessions of its own.
    thieves = [_session_client(port, f"kiosk-02-{n}", mallory_tls) for n in range(3)]
    for thief in thieves:
        thief.subscribe("$share/central/bhxh/devices/+/records", qos=1)
    time.sleep(0.5)
    recs = enqueue(device, 4, pdf_sizes=(9_000,))   # several chunks each at 4,096 bytes
    publisher = services(run_publisher, device)
    deadline = time.monotonic() + PROMPT_S
    while time.monotonic() < deadline and not all_delivered(device, recs):
        time.sleep(0.1)
    for thief in thieves:
        thief.disconnect()
        thief.loop_stop()
    mallory.close()
    assert all_delivered(device, recs), (
        f"records not delivered within {PROMPT_S} s: kiosk-02's share of the group's "
        "messages reached no receiver")
    assert_exactly_once(device, recs)
    assert_no_false_delivery(device)
    assert publisher.running()
