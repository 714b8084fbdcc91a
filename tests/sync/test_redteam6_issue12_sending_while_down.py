"""Red team 6 on issue 12, item 5: what the officer's screens say of records that were
in flight when the link went down on a full disk, once space is back and the broker
is still away.

Commit 48c2ee3 made release_all() forget the lost connection's records at once and
give them back in the database "on a later loop" (release_pending). That later loop
is the connected one only: run() calls release_pending() after a successful
client.loop(), never while the broker is unreachable (the loop then only makes
connection attempts). So records in flight when the link was lost on a full disk stay
'sending' in the outbox (what the dossier screens show as "sending") for as long as
the broker stays away, hours in an outage, though space came back seconds after and
nothing is being sent. With room on disk the same loss gives them back at once
('pending'), which the control shows.

Real processes: a real mosquitto killed (and, at the end, started again on its
port), `appliance sync` as a process on a real tmpfs filled to the last byte, no
receiver while the records are in flight (so they stay in flight: a 60 s ack
timeout), then the receiver in a thread to show that everything still arrives once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.system import config as config_mod
from tests.helpers.full_disk_sync import full_disk_sync
from tests.helpers.sync_rig import (
    Brokers,
    Service,
    all_delivered,
    assert_exactly_once,
    device_state,
    outbox_state,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(80)

RETRY_SECONDS = 1.0
RECORDS = 3


def _link_lost_with_records_in_flight(tmp_path: Path, brokers: Brokers,
                                      services: StartService, *, full: bool) -> None:
    """Records in flight, (the disk full,) the broker killed, (space back,) the broker
    still away: the screens must say 'disconnected' and the records must not say
    'sending'; then the broker and a receiver come back and each arrives once."""
    broker = brokers.start()
    with full_disk_sync(tmp_path, broker.port, RETRY_SECONDS, records=RECORDS,
                        ack_timeout_seconds=60.0) as rig:
        config, recs = rig.config, rig.records
        sync = rig.procs.start("sync", "sync")
        wait_for(lambda: all(outbox_state(config, r.record_id) is OutboxState.SENDING
                             for r in recs), 30, "the records in flight (no receiver)")
        assert device_state(config, "sync.state") == "connected"
        if full:
            rig.fill()
        lost = rig.log().count("lost:")
        broker.kill()
        wait_for(lambda: rig.log().count("lost:") > lost, 30, "sync noticing the loss")
        if rig.filler is not None:
            time.sleep(2 * RETRY_SECONDS)  # the give-back refused for the full disk
            rig.make_room()
        time.sleep(4 * RETRY_SECONDS)  # several loops with room on disk, no broker
        rig.alive(sync)
        assert device_state(config, "sync.state") == "disconnected"
        states = [outbox_state(config, r.record_id) for r in recs]
        assert OutboxState.SENDING not in states, (
            f"outbox {[s.value if s else None for s in states]} with the broker away "
            "and room on disk")

        brokers.start(port=broker.port)
        services(run_receiver, config)
        wait_for(lambda: all_delivered(config, recs), 40, "every record after all")
        assert_exactly_once(config, recs)
        rig.alive(sync)


def test_records_lost_in_flight_on_a_full_disk_are_not_sending_while_the_broker_is_away(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """Found by this review: records in flight when the link was lost on a full disk
    stayed 'sending' after space was back for as long as the broker was away:
    release_pending ran only on a connected loop. The link lost on a full disk, space
    back, the broker still away."""
    _link_lost_with_records_in_flight(tmp_path, brokers, services, full=True)


def test_records_lost_in_flight_with_room_are_pending_while_the_broker_is_away(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """The control: the same loss with room on disk gives them back at once."""
    _link_lost_with_records_in_flight(tmp_path, brokers, services, full=False)
