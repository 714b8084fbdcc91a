"""Red team 20 (issue 12): sync reading the broker's SUBACK for its ack topic (b8f551d).

Real mosquitto 2.0.11 with its dynamic security plugin (tests/helpers/dynsec.py), the
receiver's and sync's own run functions in threads.

- A device that starts (or reconnects after being kicked) while its ack topic is
  refused sent its backlog: the gate in feed() opened on "not known refused", not
  on "granted", and the SUBACK comes after the first feed() (a bug, fixed since).
- The ACL fixed without a kick (a broker that does not disconnect its clients when an
  ACL changes, as AWS IoT or EMQX): `Office.allow` (removeRoleACL) kicks every client
  of the role, so the change's own test resumes through a reconnect and never through
  the SUBSCRIBE asked again every SUBSCRIBE_RETRY_SECONDS. Here the default ACL is
  changed instead, which kicks nobody: the retry alone must resume (holds).
"""

from __future__ import annotations

import logging
import time

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.store import db
from appliance.store.db import connect
from appliance.sync import client as sync_client
from appliance.sync import wire
from appliance.sync.publisher import PACKS_STATE_KEY, run_publisher
from appliance.system.config import Config
from tests.helpers import dynsec
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_state,
    enqueue,
    make_config,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(90),
    dynsec.NEEDED,
]
PREFIX = Config().mqtt.topic_prefix
ACKS = wire.acks_topic(PREFIX, Config().device.id)


def test_a_restart_while_the_ack_topic_is_refused_sends_nothing(
        tmp_path, brokers, services, monkeypatch):
    """Found as a bug, fixed since (feed() now waits for the SUBACK that grants the ack
    topic, at each connection). Before: the change said "the device now sends nothing while
    refused", but feed() was closed only once a refusing SUBACK had come: at every start of
    sync (and after every reconnect where acks_refused was still "", e.g. the kick that
    follows an ACL revoked with dynsec) the first feed() runs between CONNACK and SUBACK and
    publishes the backlog, up to the window and 4 MiB, to a receiver that stores it while no
    ack can come back. Those records then wait out their ack timeout and back-off. The
    product should send nothing until the SUBACK for its ack topic has granted it (at each
    connection), i.e. gate feed() on "granted", not on "refused"."""
    monkeypatch.setattr(sync_client, "SUBSCRIBE_RETRY_SECONDS", 30.0)
    office = dynsec.start(brokers, tmp_path / "dynsec", [ACKS])
    config = make_config(tmp_path, office.broker.port)
    receiver = services(run_receiver, config)
    recs = enqueue(config, 40, pdf_sizes=(2_000,))
    # A device that has talked to this receiver before (its packs known): as after
    # any earlier delivery. Restarted by systemd, or after an ACL change.
    conn = connect(config.paths.database)
    try:
        with db.transaction(conn):
            db.set_state(conn, PACKS_STATE_KEY, "1")
    finally:
        conn.close()
    sniffer = Attacker(office.broker.port, client_id="sniffer")
    try:
        sniffer.sniff(wire.records_topic(PREFIX, config.device.id))
        assert sniffer.granted and not sniffer.granted[0][0].is_failure
        device = services(run_publisher, config)
        wait_for(lambda: device_state(config, "sync.state") == "acks_refused", 15,
                 "sync saying its acks are refused")
        time.sleep(1.0)
        stored = central_store.list_records(config.central.database)
        assert device.running() and receiver.running()
        assert not all_delivered(config, recs)
        # Nothing may have gone: no ack could ever come back for it.
        assert (len(sniffer.seen), len(stored)) == (0, 0), (
            f"{len(sniffer.seen)} message(s) published on the records topic, "
            f"{len(stored)} of {len(recs)} records stored by the receiver, while the "
            "broker refuses the device its ack topic")
    finally:
        sniffer.close()


def test_the_acl_fixed_without_a_kick_resumes_through_the_retry_alone(
        tmp_path, brokers, services, monkeypatch, caplog):
    """Holds: the ack topic refused by the broker's default ACL, then allowed by
    changing that default (no client is kicked: no reconnect). Sync asks again every
    SUBSCRIBE_RETRY_SECONDS, the broker grants it, sync says "connected" and every
    record arrives once, on the same connection."""
    monkeypatch.setattr(sync_client, "SUBSCRIBE_RETRY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="appliance.sync.publisher")
    office = dynsec.start(brokers, tmp_path / "dynsec",
                          allow_subscriptions=[wire.records_subscription(PREFIX)],
                          default_subscribe=False)
    config = make_config(tmp_path, office.broker.port)
    receiver = services(run_receiver, config)
    recs = enqueue(config, 4, pdf_sizes=(8_000,))
    device = services(run_publisher, config)
    wait_for(lambda: device_state(config, "sync.state") == "acks_refused", 15,
             "sync saying its acks are refused")
    # Asked again several times meanwhile, each refused: said once.
    time.sleep(2.0)
    assert device_state(config, "sync.state") == "acks_refused"
    office.set_default_subscribe(True)
    wait_for(lambda: all_delivered(config, recs), 30, "delivery once the ACL allows it")
    wait_for(lambda: device_state(config, "sync.state") == "connected", 10,
             "sync saying it is connected again")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert device.running() and receiver.running()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("refused this device's subscription" in m for m in messages) == 1, messages
    assert any("now lets this device read" in m for m in messages), messages
    # Resumed by the retry, not by a reconnect.
    assert not any("lost" in m for m in messages), messages
    assert sum(m.startswith("connected to") for m in messages) == 1, messages
