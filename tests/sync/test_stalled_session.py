"""A broker that stops sending acks on a live connection does not stop delivery.

Why: mosquitto (2.0.11 here, Debian's; the code is the same up to 2.0.18) keeps one
slot of a client's send quota (max_inflight_messages) for every QoS 1 message it
discards as larger than the client's Maximum Packet Size, and gives them back only
at a new connection. On a broker whose own max_packet_size is above sync's 16 MiB
(mosquitto's default is 256 MB), anyone who may publish on a device's ack topic can
spend that quota, and the connection stays up: keepalive pings still pass, no QoS 1
message comes through. Before, every ack of the central office then waited in the
broker for as long as the connection lasted. Now sync connects again when acks are
overdue and the receiver answered for nothing on this connection.

Real mosquitto (no packet limit of its own, a quota of 2 so that the attack costs
2 messages instead of 100), real `appliance sync` and `appliance central` processes.
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from appliance.sync import publisher, wire
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    real_services,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

QUOTA = 2


def test_acks_held_back_on_a_live_connection_come_after_a_reconnect(tmp_path, brokers):
    broker = brokers.start(extra_config=f"max_inflight_messages {QUOTA}")
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=1.0,
                         stall_reconnect_seconds=1.0)
    with real_services(tmp_path, config) as services, \
            closing(Attacker(broker.port)) as attacker:
        first = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, first), 30, "delivery before the attack")

        # Just over what sync takes: the broker discards each for sync, keeping a slot.
        junk = b"0" * (publisher.MAX_PACKET_BYTES + 1024)
        for _ in range(QUOTA):
            attacker.publish(wire.acks_topic(config.mqtt.topic_prefix, config.device.id),
                             junk)
        time.sleep(0.5)

        later = enqueue(config, 3)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all_delivered(config, later):
            time.sleep(0.1)
        services.assert_running()
        sync_log = services.logs["sync"].read_text(errors="replace")
        assert all_delivered(config, later), (
            "acks held back by the broker never reached sync; sync log tail:\n"
            f"{sync_log[-2000:]}")
        assert "connecting again" in sync_log
        assert_exactly_once(config, first + later)



def test_a_quiet_receiver_connects_again_and_loses_nothing(tmp_path, broker):
    """The receiver's side: it cannot tell a stalled session from a quiet office, so
    it connects again after central.quiet_reconnect_seconds without a QoS 1 message.
    (Its quota is its Receive Maximum, 512: stalling it takes 512 messages over
    64 MiB, 32 GB, too much for a test; the reconnect itself is what is tested.)
    Records sent around those reconnects arrive once each."""
    config = make_config(tmp_path, broker.port, central={"quiet_reconnect_seconds": 1.0})
    with real_services(tmp_path, config) as services:
        sent = []
        for _ in range(4):
            sent += enqueue(config, 3)
            time.sleep(1.6)
        wait_for(lambda: all_delivered(config, sent), 30, "delivery around reconnects")
        services.assert_running()
        central_log = services.logs["central"].read_text(errors="replace")
        assert central_log.count("connecting again") >= 2, central_log[-2000:]
        assert_exactly_once(config, sent)
