"""Issue 12, item 2, independent acceptance: the provisioning broker configuration
(provisioning/mosquitto-acl.conf and the identity lines of
provisioning/mosquitto-broker.conf, verbatim, behind TLS client certificates) against a
device that holds a genuine certificate of its own (kiosk-02) and uses it for more than
publishing on its own topic.

tests/sync/test_acl.py covers squatting, forged acks and sniffing by topic. These two
were found by an independent review (both failed on the configuration shipped then):

- Session takeover: kiosk-02 connected with the receiver's client id; mosquitto 2.0
  wiped the receiver's session, so the records the broker had queued for it waited for
  the devices' ack timeout. The broker now makes the certificate's CN the client id
  (use_username_as_clientid), so whatever id kiosk-02 asks for, the session is its own.
- Shared-group hijack: kiosk-02 subscribed to $share/central/bhxh/devices/+/records (the
  group the README named); mosquitto's acl_file checks deliveries, not subscriptions, so
  it dealt kiosk-02 its turn of every device's messages and dropped them. The group name
  is now a secret of at least 16 characters (config refuses a guessable one), so a
  device can only subscribe to other groups, which get their own copies (dropped by the
  read ACL) and take nothing from the receivers.
"""

from __future__ import annotations

import dataclasses
import secrets
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
from tests.helpers.mosquitto import TlsFiles, provisioning_identity_lines
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


def _acl(folder: Path, receivers: tuple[str, ...]) -> Path:
    """The shipped ACL, with one block for each receiver after the first, made as its
    comments say (the same lines under the other receiver's CN)."""
    shipped = ACL.read_text(encoding="utf-8")
    lines = shipped.splitlines()
    start = lines.index("user central.bhxh")
    block = [line for line in lines[start + 1:start + 6] if line.startswith("topic ")]
    assert len(block) == 3, block
    extra = "".join(f"\nuser {cn}\n" + "\n".join(block) + "\n" for cn in receivers[1:])
    path = folder / "acl.conf"
    path.write_text(shipped + extra, encoding="utf-8")
    return path


def _rig(tmp_path: Path, brokers, receivers: tuple[str, ...] = ("central.bhxh",),
         **central: object
         ) -> tuple[Pki, config_mod.Config, list[config_mod.Config], tuple[Path, Path, Path]]:
    """Broker with the provisioning ACL, identity lines and client certificates; the
    device's config (kiosk-01), each receiver's (its own certificate), and kiosk-02's
    TLS files."""
    pki = make_pki(tmp_path / "pki", client_cn="kiosk-01")
    other_cert, other_key = client_certificate(pki, "kiosk-02")
    acl = _acl(tmp_path, receivers)
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key),
                           anonymous=False,
                           extra_config=f"{provisioning_identity_lines()}\nacl_file {acl}")
    device = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                         cert_file=str(pki.client_cert), key_file=str(pki.client_key),
                         ack_timeout_seconds=60.0, central=central or None)
    configs = []
    for n, cn in enumerate(receivers):
        cert, key = client_certificate(pki, cn)
        configs.append(dataclasses.replace(
            device, mqtt=dataclasses.replace(device.mqtt, cert_file=str(cert),
                                             key_file=str(key)),
            central=dataclasses.replace(device.central, client_id=f"central-{n}")))
    return pki, device, configs, (pki.ca_cert, other_cert, other_key)


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


def test_a_device_taking_the_receivers_client_id_costs_no_queued_record(
        tmp_path: Path, brokers, services) -> None:
    _pki, device, [central], mallory_tls = _rig(tmp_path, brokers)
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
    # kiosk-02, with its own genuine certificate, under the receiver's client id (as
    # configured, and its certificate's CN). (Not the device's: a device kicked off
    # sends its records again when it reconnects, which would hide the loss.)
    for stolen in (central.central.client_id, "central.bhxh"):
        thief = _session_client(port, stolen, mallory_tls)
        time.sleep(0.3)
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


def test_a_device_joining_the_receivers_share_group_swallows_nothing(
        tmp_path: Path, brokers, services) -> None:
    group = secrets.token_hex(8)  # as provisioned: random, kept with the keys
    _pki, device, receivers, mallory_tls = _rig(
        tmp_path, brokers, ("central.bhxh", "central-2.bhxh"), share_group=group,
        max_transfers_per_device=256)
    central = receivers[0]
    port = device.mqtt.port
    mallory = Attacker(port, client_id="kiosk-02", tls=mallory_tls)
    for receiver in receivers:
        services(run_receiver, receiver)
    probe(lambda: mallory.publish("bhxh/devices/kiosk-02/records", b"["),
          lambda: central_counters(central).get("dead_letters", 0), "the receivers")
    # kiosk-02 tries the group the README named before and other guesses, and the
    # plain topics (one session: the broker makes every id it asks for "kiosk-02").
    thieves = [_session_client(port, "kiosk-02-0", mallory_tls)]
    for guess in ("central", "fleet", "g1", "receivers", "bhxh", group[:8]):
        thieves[0].subscribe(f"$share/{guess}/bhxh/devices/+/records", qos=1)
    thieves[0].subscribe("bhxh/devices/+/records", qos=1)
    thieves[0].subscribe("#", qos=1)
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
        f"records not delivered within {PROMPT_S} s: kiosk-02's subscriptions took "
        "messages from the receivers' group")
    assert_exactly_once(device, recs)
    assert_no_false_delivery(device)
    assert publisher.running()
