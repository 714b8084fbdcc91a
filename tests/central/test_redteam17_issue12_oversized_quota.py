"""Red team 17 on issue 12 and commit d59db12: the central receiver sends MQTT v5
Maximum Packet Size (max_packet_bytes(wire.MAX_MESSAGE_BYTES), about 1.07 MiB) and
Receive Maximum 512 in its CONNECT, so a broker without a packet limit of its own
(mosquitto's default, the case d59db12 was written for) discards a larger message
for it "as if sent".

Mosquitto (2.0.11 here; the same up to 2.0.18) discards such a QoS 1 message without
giving back the slot of the receiver's send quota it took (src/database.c,
db__message_write_inflight_out_single, MOSQ_ERR_OVERSIZE_PACKET branch). 512 such
messages on any records topic, one device's own included (an ACL lets a device
publish there), leave the quota at 0 for as long as the receiver stays connected: the
broker sends it no record of any device any more, while it pings along. Before
d59db12 each was read, set aside as a dead letter and acknowledged.

provisioning/mosquitto-broker.conf's max_packet_size (1,100,000) is below the
receiver's limit, so the shipped broker refuses such messages from the publisher and
is not exposed; a broker at mosquitto's defaults, or a cloud broker with a larger cap,
is. A real mosquitto without max_packet_size, real `appliance central` and `appliance
sync` processes.

Fixed since: each service's limit is now far above what a broker configured as
provisioning/mosquitto-broker.conf lets through (sync 16 MiB, the receiver 64 MiB), so
these messages reach it and are set aside as before d59db12.
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from appliance.sync import wire
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    real_services,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

RECEIVE_MAXIMUM = 512  # appliance.central.receiver.RECEIVE_MAXIMUM, checked below


def test_oversized_records_do_not_stop_the_receiver(tmp_path, broker):
    from appliance.central import receiver

    assert receiver.RECEIVE_MAXIMUM == RECEIVE_MAXIMUM
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=1.0)
    with real_services(tmp_path, config) as services, \
            closing(Attacker(broker.port, "rogue-device")) as attacker:
        first = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, first), 25, "delivery before the attack")

        size = 1_119_207  # just over the limit d59db12 set (since raised)
        junk = b"\x00" * size
        topic = wire.records_topic(config.mqtt.topic_prefix, "rogue-01")
        window: list = []
        for _ in range(RECEIVE_MAXIMUM):
            window.append(attacker.client.publish(topic, junk, qos=1))
            if len(window) >= 16:  # paho's own window is 20: never more in memory
                window.pop(0).wait_for_publish(30)
        for info in window:
            info.wait_for_publish(30)
            assert info.is_published()

        later = enqueue(config, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all_delivered(config, later):
            time.sleep(0.1)
        services.assert_running()
        assert all_delivered(config, later), (
            "no record reached the central office after the attack; broker log tail:\n"
            f"{broker.log()[-600:]}")
        assert_exactly_once(config, first + later)
