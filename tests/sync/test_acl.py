"""The broker ACL from provisioning/, verbatim, on a real mosquitto with client certificates.

A device (kiosk-02, with a genuine certificate of its own) tries what an attacker on
an open broker can do: squat kiosk-01's record ids, forge its acks, sniff everyone's
traffic. The broker stops all of it; anonymous clients do not get in at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from tests.helpers.certs import client_certificate, make_pki
from tests.helpers.mosquitto import TlsFiles
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    probe,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)
ACL = Path(__file__).resolve().parents[2] / "provisioning" / "mosquitto-acl.conf"


def test_provisioning_acl_confines_each_client_to_its_own_topics(tmp_path, brokers, services):
    pki = make_pki(tmp_path / "pki", client_cn="kiosk-01")
    central_cert, central_key = client_certificate(pki, "central.bhxh")
    other_cert, other_key = client_certificate(pki, "kiosk-02")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key),
                           anonymous=False, extra_config=f"acl_file {ACL}")
    device = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                         cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    central = dataclasses.replace(device, mqtt=dataclasses.replace(
        device.mqtt, cert_file=str(central_cert), key_file=str(central_key)))

    mallory = Attacker(broker.port, client_id="kiosk-02",
                       tls=(pki.ca_cert, other_cert, other_key))
    mallory.sniff("bhxh/#")
    mallory.sniff(wire.acks_topic("bhxh", "kiosk-01"))
    mallory.sniff(wire.records_topic("bhxh", "kiosk-01"))
    # mosquitto 2.0 grants the subscriptions and filters each message by the read ACL
    # when it delivers: what matters is that nothing arrives (checked below).

    # The receiver's session exists (kiosk-02 may publish junk on its own topic: it is
    # set aside), then the receiver goes away so the broker would queue the squat.
    receiver = services(run_receiver, central)
    probe(lambda: mallory.publish(wire.records_topic("bhxh", "kiosk-02"), b"["),
          lambda: central_counters(central).get("dead_letters", 0), "the receiver")
    receiver.stop()
    recs = enqueue(device, 3, pdf_sizes=(8_000,))
    publisher = services(run_publisher, device)
    wait_for(lambda: all(outbox_state(device, r.record_id) is OutboxState.SENDING
                         for r in recs), 10, "the records in flight")
    time.sleep(1.0)
    # As kiosk-02: squat the first pending id, and forge acks for all of them.
    body = json.dumps({"record_id": recs[0].record_id, "device_id": "kiosk-01",
                       "dossier_code": "FORGED", "papers": []})
    sha = hashlib.sha256(body.encode()).hexdigest()
    mallory.publish(wire.records_topic("bhxh", "kiosk-01"),
                    wire.encode_record(wire.RecordMessage(recs[0].record_id, sha, body)))
    mine = acksig.generate_key(tmp_path / "mallory.key")
    for rec in recs:
        forged = acksig.sign(mine, wire.Ack(rec.record_id, rec.sha256, time.time(), "kiosk-01"))
        mallory.publish(wire.acks_topic("bhxh", "kiosk-01"), wire.encode_ack(forged))
    time.sleep(1.0)
    assert device_dead_letters(device) == {}  # the forged acks never reached the device
    assert not any(outbox_state(device, r.record_id) is OutboxState.DELIVERED for r in recs)
    dead_before = central_counters(central)["dead_letters"]
    receiver = services(run_receiver, central)
    wait_for(lambda: all_delivered(device, recs), 40, "delivery under the ACL")

    assert_exactly_once(device, recs)
    assert_no_false_delivery(device)
    assert central_store.list_held(central.central.database) == []
    assert central_store.list_conflicts(central.central.database) == []
    assert central_counters(central)["dead_letters"] == dead_before
    assert mallory.seen == []                  # nor did anyone's traffic reach mallory
    assert receiver.running() and publisher.running()
    mallory.close()

    # No certificate, no connection (the listener refuses before any ACL).
    anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon",
                            protocol=mqtt.MQTTv5)
    anonymous.tls_set(ca_certs=str(pki.ca_cert))
    connected = False
    try:
        anonymous.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not anonymous.is_connected():
            if anonymous.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
        connected = anonymous.is_connected()
    except OSError:
        pass
    assert not connected
