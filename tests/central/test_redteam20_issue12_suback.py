"""Red team 20 (issue 12): the receiver reading the broker's SUBACK for its records
subscription (b8f551d), on the path the change's own test does not take.

`Office.allow` (removeRoleACL) makes dynsec kick every client of the role, so there
the receiver is served again through a reconnect. Here the ACL is fixed by changing
dynsec's default (which kicks nobody, as a broker that does not disconnect clients on
an ACL change): only the SUBSCRIBE asked again every SUBSCRIBE_RETRY_SECONDS in run()
can bring the records in. Real mosquitto 2.0.11, the receiver's and sync's own run
functions in threads.
"""

from __future__ import annotations

import logging
import time

import pytest

from appliance.central import receiver as receiver_mod
from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system.config import Config
from tests.helpers import dynsec
from tests.helpers.sync_rig import (
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(90),
    dynsec.NEEDED,
]


def test_a_refused_receiver_is_served_by_its_retry_without_a_reconnect(
        tmp_path, brokers, services, monkeypatch, caplog):
    """Holds: refused by the broker's default ACL (the devices may read their ack
    topics), the receiver says so once, asks again, and once the default allows it,
    takes every record on the same connection and says STATUS=subscribed."""
    monkeypatch.setattr(receiver_mod, "SUBSCRIBE_RETRY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="appliance.central.receiver")
    prefix = Config().mqtt.topic_prefix
    office = dynsec.start(brokers, tmp_path / "dynsec",
                          allow_subscriptions=[wire.acks_topic(prefix, "+")],
                          default_subscribe=False)
    config = make_config(tmp_path, office.broker.port)
    receiver = services(run_receiver, config)
    wait_for(lambda: any("subscription refused" in n for n in receiver.notes), 15,
             "the receiver saying its subscription is refused")
    recs = enqueue(config, 3, pdf_sizes=(8_000,))
    device = services(run_publisher, config)
    time.sleep(2.0)  # asked again about four times meanwhile, each refused
    assert central_store.list_records(config.central.database) == []
    refusals = [n for n in receiver.notes if "subscription refused" in n]
    assert len(refusals) >= 3, receiver.notes
    office.set_default_subscribe(True)
    wait_for(lambda: "STATUS=subscribed" in receiver.notes, 15, "STATUS=subscribed")
    wait_for(lambda: all_delivered(config, recs), 40, "delivery once the ACL allows it")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert device.running() and receiver.running()
    messages = [r.getMessage() for r in caplog.records]
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1, messages
    assert any("now grants the subscription" in m for m in messages), messages
    assert not any("lost the broker" in m for m in messages), messages
    assert sum(m.startswith("receiver connected") for m in messages) == 1, messages
