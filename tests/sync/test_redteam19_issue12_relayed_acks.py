"""Red team 19 (issue 12, commit cf00ddc): _Publisher.stalled() drops a connection whose
acks are overdue only while "the receiver has answered for nothing"; an answer is any
signed ack or resume answer for a record in flight, however it came. Its docstring:
"junk, replayed acks and QoS 0 messages flow past a spent quota" - so it counts none
of them. It does count a genuine ack that came at QoS 0.

The attack the stall reconnect is for: whoever may publish on a device's ack topic
spends the broker's send quota for the device with messages over sync's Maximum Packet
Size (mosquitto keeps the slot of each one it discards), and no QoS 1 message reaches
sync again on this connection. If that someone may also read the topic (the same
loose ACL), it relays at QoS 0, which passes a spent quota, the genuine acks of the
records it lets through, and keeps back those of the records it wants to stop: every
relayed ack is an answer for a record in flight, so the session never counts as
stalled, sync never connects again (which would give the quota back and bring the
kept-back acks), and the chosen record is sent again and again, its acks waiting in
the broker, while the device delivers everything else and looks healthy.

Real mosquitto (a quota of 2, as tests/sync/test_stalled_session.py), real `appliance
sync` and `appliance central` processes; the attacker a bare MQTT client.

Fixed since: only an answer that came at QoS 1 counts (answered()).
"""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from appliance.sync import publisher, wire
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    enqueue,
    make_config,
    real_services,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

QUOTA = 2
ACK_TIMEOUT = 2.0
ATTACK_SECONDS = 14.0


def test_acks_relayed_at_qos0_do_not_hide_a_stalled_session(tmp_path, brokers):
    broker = brokers.start(extra_config=f"max_inflight_messages {QUOTA}")
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=ACK_TIMEOUT,
                         stall_reconnect_seconds=ACK_TIMEOUT)
    ack_topic = wire.acks_topic(config.mqtt.topic_prefix, config.device.id)
    with real_services(tmp_path, config) as services, \
            closing(Attacker(broker.port)) as attacker:
        first = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, first), 30, "delivery before the attack")

        junk = b"0" * (publisher.MAX_PACKET_BYTES + 1024)
        for _ in range(QUOTA):
            attacker.publish(ack_topic, junk)

        victim = enqueue(config, 1)[0]
        relayed: set[bytes] = set()
        kept_back = [0]
        lock = threading.Lock()

        def relay(client, userdata, message) -> None:
            with lock:
                if message.payload in relayed:
                    return  # our own relay coming back
                relayed.add(message.payload)
            if victim.record_id.encode() in message.payload:
                kept_back[0] += 1
                return
            client.publish(ack_topic, message.payload, qos=0)

        attacker.client.on_message = relay
        attacker.sniff(ack_topic)

        others = []
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS and not all_delivered(
                config, [victim]):
            others += enqueue(config, 1)
            time.sleep(0.3)
        services.assert_running()
        sync_log = services.logs["sync"].read_text(errors="replace")
        through = sum(all_delivered(config, [r]) for r in others)
        if through < len(others) // 2 or not kept_back[0]:
            raise RuntimeError(f"setup: {through} of {len(others)} relayed, "
                               f"{kept_back[0]} kept back; sync log:\n{sync_log[-2000:]}")
        assert all_delivered(config, [victim]), (
            f"record {victim.record_id} not delivered after {ATTACK_SECONDS} s: its acks "
            f"({kept_back[0]} seen by the attacker) wait in the broker while {through} "
            f"record(s) delivered through QoS 0 relays keep the session 'answered'; "
            f"reconnects: {sync_log.count('connecting again')}")
