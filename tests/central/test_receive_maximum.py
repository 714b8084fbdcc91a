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


def _held(config, receive_maximum: int | None, topic: str) -> int:
    """Messages a manual-ack client gets before it sends any PUBACK."""
    got: list[int] = []
    connected: list[bool] = []
    sub = make_client(config.mqtt, f"rm-{receive_maximum}", manual_ack=True)
    sub.on_connect = lambda *_args: connected.append(True)
    sub.on_message = lambda _c, _u, m: got.append(m.mid)
    open_session(sub, config.mqtt, lambda: bool(connected), lambda: None,
                 receive_maximum=receive_maximum)
    sub.subscribe(topic, qos=1)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"p-{receive_maximum}",
                      protocol=mqtt.MQTTv5)
    pub.connect(config.mqtt.host, config.mqtt.port)
    pub.loop_start()
    try:
        for _ in range(20):
            sub.loop(0.05)
        for _ in range(receiver.RECEIVE_MAXIMUM + 100):
            pub.publish(topic, b"x" * 100, qos=1)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            sub.loop(0.05)
        return len(got)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_the_broker_sends_the_receiver_its_receive_maximum(tmp_path, broker):
    config = make_config(tmp_path, broker.port)
    assert _held(config, None, "t/default") == 100  # max_inflight_messages
    assert _held(config, receiver.RECEIVE_MAXIMUM, "t/receiver") == receiver.RECEIVE_MAXIMUM
