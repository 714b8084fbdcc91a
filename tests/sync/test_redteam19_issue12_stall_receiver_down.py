"""Red team 19 (issue 12, commit cf00ddc): sync drops and re-opens its connection when
acks are overdue and the receiver has answered for nothing in flight
(_Publisher.stalled), backing off from mqtt.ack_timeout_seconds to
STALL_RECONNECT_MAX_SECONDS. Held: with the receiver down (the broker up), sync does
not reconnect at every ack timeout but backs off, marks nothing delivered, and once the
receiver is back every record arrives exactly once.

Real mosquitto; the services' own run functions in threads; sync's own log lines.
"""

from __future__ import annotations

import logging
import time

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from tests.helpers.sync_rig import (
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

ACK_TIMEOUT = 0.5
DOWN_SECONDS = 4.0


def test_a_receiver_that_is_down_costs_backed_off_reconnects_and_nothing_else(
        tmp_path, broker, services, caplog):
    caplog.set_level(logging.INFO, logger="appliance.sync.publisher")
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=ACK_TIMEOUT,
                         stall_reconnect_seconds=ACK_TIMEOUT)
    records = enqueue(config, 5)
    device = services(run_publisher, config)
    time.sleep(DOWN_SECONDS)

    stalls = [r for r in caplog.records if "connecting again" in r.getMessage()]
    # Without back-off: one every ack timeout or so (about 8 here); with it, the gaps
    # double (0.5, 1, 2 s...).
    assert 1 <= len(stalls) <= 4, [f"{r.relativeCreated:.0f} ms" for r in stalls]
    assert not any(all_delivered(config, [r]) for r in records)
    assert {outbox_state(config, r.record_id) for r in records} <= {
        OutboxState.PENDING, OutboxState.SENDING}

    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, records), 40, "delivery once the receiver is up")
    assert device.running()
    assert_exactly_once(config, records)
