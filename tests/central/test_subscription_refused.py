"""A broker that refuses the receiver its records subscription (a failing SUBACK: an
ACL that does not let it read the devices' topics, or a broker without shared
subscriptions when central.share_group is set).

Before: the receiver did not look at the SUBACK; it sat connected, received nothing
and said nothing. Now it logs an ERROR naming the subscription, the broker's reason
and what to change, puts the same in systemd's status line, asks again every
client.SUBSCRIBE_RETRY_SECONDS, and takes records once the office fixed its ACL.

Real mosquitto with its dynamic security plugin (tests/helpers/dynsec.py), the ACL
changed live with mosquitto_ctrl; the receiver's and sync's own run functions.
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


def test_a_refused_records_subscription_is_said_asked_again_and_then_served(
        tmp_path, brokers, services, monkeypatch, caplog):
    monkeypatch.setattr(receiver_mod, "SUBSCRIBE_RETRY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="appliance.central.receiver")
    topic = wire.records_subscription(Config().mqtt.topic_prefix)
    office = dynsec.start(brokers, tmp_path / "dynsec", [topic])
    config = make_config(tmp_path, office.broker.port)
    receiver = services(run_receiver, config)
    wait_for(lambda: any("subscription refused" in n for n in receiver.notes), 15,
             "the receiver saying its subscription is refused")
    status = next(n for n in receiver.notes if "subscription refused" in n)
    assert status.startswith("STATUS=") and "ACL" in status, status
    refusals = [r for r in caplog.records if r.levelno == logging.ERROR
                and topic in r.getMessage() and "Not authorized" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    assert "share_group" not in refusals[0].getMessage()  # no share group configured

    recs = enqueue(config, 3, pdf_sizes=(8_000,))
    device = services(run_publisher, config)
    time.sleep(3 * config.mqtt.ack_timeout_seconds)
    assert central_store.list_records(config.central.database) == []
    assert not all_delivered(config, recs)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # said once

    office.allow(topic)
    wait_for(lambda: all_delivered(config, recs), 30, "delivery once the ACL allows it")
    assert "STATUS=subscribed" in receiver.notes
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert device.running() and receiver.running()
