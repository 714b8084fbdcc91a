"""A broker that refuses this device its ack topic (a failing SUBACK, as AWS IoT or EMQX
answer an ACL that does not let a client read a topic).

Before: sync did not look at the SUBACK. It sent its records, the receiver stored
them, no ack could come back, and each record went again after every ack timeout,
for ever, while the screens said "connected". Now sync sends nothing while refused,
says so (state `acks_refused`, the reason in sync.last_error, an ERROR in the journal,
a notice on the technician panel saying what to ask the central office for), asks
for the topic again every client.SUBSCRIBE_RETRY_SECONDS, and sends once the office
has fixed its ACL: every record then arrives once.

Real mosquitto with its dynamic security plugin (tests/helpers/dynsec.py), the ACL
changed live with mosquitto_ctrl; the receiver's and sync's own run functions.
"""

from __future__ import annotations

import logging
import time

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync import client as sync_client
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system.config import Config, with_overrides
from appliance.web import create_app
from tests.helpers import dynsec
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_state,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(90),
    dynsec.NEEDED,
]
TECH = {"X-Technician-PIN": "246813"}


def test_a_refused_ack_topic_stops_sending_says_why_and_resumes_once_granted(
        tmp_path, brokers, services, monkeypatch, caplog):
    monkeypatch.setattr(sync_client, "SUBSCRIBE_RETRY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="appliance.sync.publisher")
    defaults = Config()
    acks = wire.acks_topic(defaults.mqtt.topic_prefix, defaults.device.id)
    office = dynsec.start(brokers, tmp_path / "dynsec", [acks])
    config = make_config(tmp_path, office.broker.port)
    receiver = services(run_receiver, config)
    records = wire.records_topic(config.mqtt.topic_prefix, config.device.id)
    sniffer = Attacker(office.broker.port, client_id="sniffer")
    sniffer.sniff(records)
    recs = enqueue(config, 3, pdf_sizes=(8_000,))
    device = services(run_publisher, config)

    wait_for(lambda: device_state(config, "sync.state") == "acks_refused", 15,
             "sync saying its acks are refused")
    assert "refused" in (device_state(config, "sync.last_error") or "")
    refusals = [r for r in caplog.records if r.levelno == logging.ERROR
                and acks in r.getMessage() and "refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    # Nothing goes while refused (nor before the SUBACK: red team 20), also once the
    # records' ack timeouts (2 s here) have passed.
    time.sleep(0.5)
    sniffer.seen.clear()
    time.sleep(3 * config.mqtt.ack_timeout_seconds)
    assert sniffer.seen == []
    assert not any(outbox_state(config, r.record_id).value == "delivered" for r in recs)
    # The technician is told what to ask for, in Vietnamese.
    app = create_app(with_overrides(config, web={"officer_pin": "135792",
                                                 "technician_pin": "246813"}),
                     {"TESTING": True})
    page = app.test_client().get("/technician", headers=TECH).get_data(as_text=True)
    assert 'id="acks-refused"' in page
    assert "không cho thiết bị này nhận xác nhận" in page

    office.allow(acks)
    wait_for(lambda: all_delivered(config, recs), 30, "delivery once the ACL allows it")
    wait_for(lambda: device_state(config, "sync.state") == "connected", 10,
             "sync saying it is connected again")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert device.running() and receiver.running()
    assert any("now lets this device read" in r.getMessage() for r in caplog.records)
    sniffer.close()
