"""Red team 7 on issue 12, item 5: `systemctl stop appliance-sync` (SIGTERM) while the
data disk is full and the broker is away, with records of the lost connection not yet
given back (commit c03264a: catch_up postpones them while the disk stays full).

A stop is the operator's or systemd's ordinary request, and a full disk is a state
issue 12 says sync must ride out ("sync and the worker keep running and retry"). The
stop must therefore end promptly and cleanly (exit 0: systemd marks a unit whose stop
exits otherwise 'failed', and the technician panel then reports a failed service),
and nothing may be lost: after space is back, sync started again and the broker and
receiver back, every record arrives exactly once.

Real processes: mosquitto (killed by PID), `appliance sync` as a process on a real
tmpfs filled to the last byte, SIGTERM by PID; the receiver in a thread at the end.
The control does the same with room on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
    outbox_state,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(80)

RETRY_SECONDS = 1.0
RECORDS = 3
STOP_WITHIN_S = 10.0


class UncleanStop(AssertionError):
    """The finding itself (the strict xfail expects this, not a rig timeout)."""


def _stop_on_disk(tmp_path: Path, brokers: Brokers, services: StartService, *,
                  full: bool) -> None:
    """Records in flight, (the disk filled,) the broker killed, sync noticing; SIGTERM:
    sync must exit 0 within STOP_WITHIN_S; then space back, broker, receiver and sync
    again: each record exactly once."""
    broker = brokers.start()
    with full_disk_sync(tmp_path, broker.port, RETRY_SECONDS, records=RECORDS,
                        ack_timeout_seconds=60.0) as rig:
        config, recs = rig.config, rig.records
        sync = rig.procs.start("sync", "sync")
        wait_for(lambda: all(outbox_state(config, r.record_id) is OutboxState.SENDING
                             for r in recs), 30, "the records in flight (no receiver)")
        if full:
            rig.fill()
        lost = rig.log().count("lost:")
        broker.kill()
        wait_for(lambda: rig.log().count("lost:") > lost, 30, "sync noticing the loss")
        time.sleep(2 * RETRY_SECONDS)  # a few loops: catch_up postponed if full
        assert sync.poll() is None, rig.log()
        started = time.monotonic()
        os.kill(sync.pid, signal.SIGTERM)
        try:
            code = sync.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        text = rig.log()
        if code != 0:
            raise UncleanStop(
                f"SIGTERM: exit {code} after {took:.1f} s\n{text[-3000:]}")
        assert "Traceback" not in text, text[-3000:]

        if rig.filler is not None:
            rig.make_room()
        brokers.start(port=broker.port)
        services(run_receiver, config)
        rig.procs.start("sync", "sync")
        wait_for(lambda: all_delivered(config, recs), 40, "every record after all")
        assert_exactly_once(config, recs)


def test_sigterm_on_a_full_disk_after_a_link_loss_exits_cleanly(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """Found by this review: a stop on a full disk after a link loss exited 1 at once
    (systemd: unit 'failed'), the giving back of the lost connection's records raising
    out of the stop. Each step of the stop now tolerates a full disk
    (publisher.shut_down); reset_stale at the next start gives the records back, so
    nothing is lost (the second half of the test checks it)."""
    _stop_on_disk(tmp_path, brokers, services, full=True)


def test_sigterm_with_room_after_a_link_loss_exits_cleanly(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """The control: the same stop with room on disk exits 0 at once."""
    _stop_on_disk(tmp_path, brokers, services, full=False)
