"""The receiver asks the broker for more unacknowledged messages than mosquitto's
max_inflight_messages (100 in the tests' and the production broker configuration):
its PUBACKs wait for a group commit, and with only 100 in flight the broker stopped
sending during every fsync. Checked on the real broker: a client that never PUBACKs
gets exactly its Receive Maximum."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from appliance.central import receiver
from appliance.sync.client import make_client, open_session
from tests.helpers.sync_rig import make_config

pytestmark = pytest.mark.timeout(60)
# The broker sends at once what a client's window allows; this long without a new
# message, once all are published, and none is coming (it was a fixed 3 s).
QUIET_SECONDS = 1.0


def _held(config, receive_maximum: int | None, topic: str) -> int:
    """Messages a manual-ack client gets before it sends any PUBACK."""
    got: list[int] = []
    connected: list[bool] = []
    sub = make_client(config.mqtt, f"rm-{receive_maximum}", manual_ack=True)
    sub.on_connect = lambda *_args: connected.append(True)
    sub.on_message = lambda _c, _u, m: got.append(m.mid)
    open_session(sub, config.mqtt, lambda: bool(connected), lambda: None,
                 max_packet=receiver.MAX_PACKET_BYTES,
                 receive_maximum=receive_maximum)
    subscribed: list[bool] = []
    sub.on_subscribe = lambda *_args: subscribed.append(True)
    sub.subscribe(topic, qos=1)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"p-{receive_maximum}",
                      protocol=mqtt.MQTTv5)
    pub.connect(config.mqtt.host, config.mqtt.port)
    pub.loop_start()
    try:
        ready = time.monotonic() + 10
        while not subscribed and time.monotonic() < ready:  # SUBACK: nothing missed
            sub.loop(0.05)
        assert subscribed, "no SUBACK"
        sent = [pub.publish(topic, b"x" * 100, qos=1)
                for _ in range(receiver.RECEIVE_MAXIMUM + 100)]
        # Until the broker holds every message (it PUBACKed them all to the publisher)
        # and then nothing more has come for QUIET_SECONDS: what it would send is sent.
        end = time.monotonic() + 10
        quiet_since, seen = time.monotonic(), -1
        while time.monotonic() < end:
            sub.loop(0.05)
            if len(got) != seen or not all(m.is_published() for m in sent):
                quiet_since, seen = time.monotonic(), len(got)
            elif time.monotonic() - quiet_since >= QUIET_SECONDS:
                break
        return len(got)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_the_broker_sends_the_receiver_its_receive_maximum(tmp_path, broker):
    config = make_config(tmp_path, broker.port)
    assert _held(config, None, "t/default") == 100  # max_inflight_messages
    assert _held(config, receiver.RECEIVE_MAXIMUM, "t/receiver") == receiver.RECEIVE_MAXIMUM
