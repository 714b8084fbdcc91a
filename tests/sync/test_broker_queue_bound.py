"""The broker bounds what it queues for an offline client in bytes, and nothing is lost
when it drops the rest.

provisioning/mosquitto-broker.conf lets a client's session queue at most
max_queued_messages (100,000) messages: with a lone receiver down while devices drain
scans, up to 100,000 chunks of 120 KB, 12 GB of broker memory, and every ack timeout
adds another copy of each. max_queued_bytes bounds that too. Here the same bound, made
small, with a real mosquitto: the receiver is down while a device sends more than its
queue may hold, the broker drops the rest (it says so in its log), and when the
receiver is back every record still arrives exactly once, the dropped ones sent again
by the device after its ack timeout.
"""

from __future__ import annotations

import re
import time

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync.publisher import run_publisher
from tests.helpers.mosquitto import shipped_setting
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    probe_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
QUEUE_BYTES = 200_000


def test_the_shipped_broker_bounds_each_queue_in_bytes():
    # Above a few windows of chunks (a receiver back from a restart catches up on them
    # from the broker), far below a broker host's memory per receiver.
    assert 32 * 1024 * 1024 <= shipped_setting("max_queued_bytes") <= 1024 * 1024 * 1024
    assert shipped_setting("max_queued_messages") >= 1000


def test_what_the_broker_drops_for_a_receiver_that_is_down_is_sent_again(
        tmp_path, brokers, services):
    broker = brokers.start(extra_config=f"max_queued_bytes {QUEUE_BYTES}")
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=3.0)
    attacker = Attacker(broker.port)
    receiver = services(run_receiver, config)
    probe_receiver(attacker, config)
    receiver.stop()  # its session stays, subscribed: the broker queues for it
    recs = enqueue(config, 12, pdf_sizes=(40_000,))  # about 480 KB: more than the queue
    publisher = services(run_publisher, config)
    wait_for(lambda: re.search(r"messages are being dropped for client "
                               + re.escape(config.central.client_id), broker.log()), 20,
             "the broker to drop what the receiver's queue cannot hold")
    time.sleep(1)
    receiver = services(run_receiver, config)
    wait_for(lambda: all_delivered(config, recs), 60, "every record after the receiver is back")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert receiver.running() and publisher.running()
    attacker.close()
