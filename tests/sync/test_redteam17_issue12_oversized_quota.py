"""Red team 17 on issue 12 and commit d59db12 ("Each service tells the broker the
largest packet it takes"): sync sends MQTT v5 Maximum Packet Size in its CONNECT
(max_packet_bytes(wire.MAX_BATCH_ACK_BYTES), about 135 KB), and the broker discards a
larger message for it "as if sent".

Mosquitto (2.0.11 here, Debian's; the code is the same up to 2.0.18) discards such a
QoS 1 message without giving back the slot of the client's send quota it took when
it was put in flight (src/database.c, db__message_write_inflight_out_single: the
MOSQ_ERR_OVERSIZE_PACKET branch removes the message, only the expiry branch calls
util__increment_send_quota). Each oversized message costs one slot for as long as the
connection lasts. Sync asks for no Receive Maximum, so its quota is the broker's
max_inflight_messages (100 in provisioning/mosquitto-broker.conf and in the test
broker): 100 messages of ~140 KB (14 MB, under the shipped broker's own 1.1 MB
max_packet_size) on the device's ack topic leave the quota at 0, and the broker
sends sync no QoS 1 message after them. Every genuine ack of the central office then
waits in the broker's queue; sync stays connected (keepalive pings still pass), never
reconnects (which would reset the quota), and its records are never marked delivered.

Before d59db12 the same 100 messages were read, set aside as dead letters and
acknowledged; sync went on. Real mosquitto, real `appliance sync` and `appliance
central` processes.

Fixed since: each service's limit is now far above what a broker configured as
provisioning/mosquitto-broker.conf lets through (sync 16 MiB, the receiver 64 MiB), so
these messages reach it and are set aside as before d59db12.
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from appliance.sync import wire
from tests.helpers.mosquitto import shipped_setting
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


def test_oversized_acks_do_not_stop_delivery(tmp_path, brokers):
    # The shipped broker's own limits: it takes messages up to max_packet_size from
    # any publisher and puts max_inflight_messages in flight to a client at most.
    broker = brokers.start(extra_config=f"max_packet_size {shipped_setting('max_packet_size')}")
    assert shipped_setting("max_inflight_messages") == 100  # as the test broker has it
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=1.0)
    with real_services(tmp_path, config) as services, closing(Attacker(broker.port)) as attacker:
        first = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, first), 25, "delivery before the attack")

        # Each just over what sync said it takes, far under the shipped broker's own
        # max_packet_size: the broker accepts them from the publisher.
        size = 136_167  # just over the limit d59db12 set (since raised)
        assert size < shipped_setting("max_packet_size")
        topic = wire.acks_topic(config.mqtt.topic_prefix, config.device.id)
        junk = b"[" + b"0," * (size // 2) + b"0]"
        for _ in range(shipped_setting("max_inflight_messages")):
            attacker.publish(topic, junk)

        later = enqueue(config, 2)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and not all_delivered(config, later):
            time.sleep(0.1)
        services.assert_running()
        assert all_delivered(config, later), (
            "records acknowledged by the central office never marked delivered; "
            f"broker log tail:\n{broker.log()[-1500:]}")
        assert_exactly_once(config, first + later)
