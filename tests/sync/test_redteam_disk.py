"""Red team: `appliance sync` (a real process) whose data disk fills to the last byte
while its records are out, so that the receiver's acks cannot be written; then a
kill -9 of sync (the acks it held in memory are gone) and a restart on the still-full
disk; then space comes back.

Why: tests/worker/test_disk_full.py shows a running sync service waiting on a full
disk and delivering later; it never loses the process while acks are held in memory
only. The promises at stake: nothing queued is dropped, nothing is delivered twice
at the central office, no record is marked delivered without its ack, and the audit
trail says "sent" exactly once per record (the line is written with the delivery),
whatever the order of the full disk, the kill and the redelivered acks.
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
from appliance.records import audit
from appliance.store.outbox import OutboxState
from appliance.system import config as config_mod
from tests.helpers.full_disk_sync import FullDiskSync, full_disk_sync
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    Service,
    all_delivered,
    assert_exactly_once_everywhere,
    assert_no_false_delivery,
    outbox_state,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(150)

RECORDS = 4
# sync tries the full disk again every RETRY_SECONDS (5 s in service): 1 s here, so
# that a restart on the full disk is seen retrying within seconds.
RETRY_SECONDS = 1.0


def _stays_up(proc: subprocess.Popen[bytes], seconds: float, rig: FullDiskSync) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, (
            f"appliance sync exited ({proc.returncode}); under systemd a crash loop, "
            f"then a failed unit\n{rig.log()}")
        time.sleep(0.25)


def _full_disk_then_kill(tmp_path: Path, port: int, services: StartService,
                         restart_while_full: bool) -> None:
    """Records out ('sending'), the disk filled to 0, the receiver's acks unwritable,
    sync killed -9, started again (on the full disk, or once space is back); then
    every record must be delivered exactly once with one "send" line each."""
    with full_disk_sync(tmp_path, port, RETRY_SECONDS, records=RECORDS,
                        pdf_sizes=(20_000,)) as rig:
        config, records, procs = rig.config, rig.records, rig.procs
        sync = procs.start("sync", "sync")
        wait_for(lambda: all(outbox_state(config, r.record_id) is OutboxState.SENDING
                             for r in records), 30, "every record claimed")
        rig.fill()
        receiver = services(run_receiver, config)  # the central disk has room
        wait_for(lambda: "data disk full" in rig.log(), 60, "sync's disk-full line")
        _stays_up(sync, 0, rig)
        assert_no_false_delivery(config)

        os.kill(sync.pid, signal.SIGKILL)  # the acks it held in memory are gone
        sync.wait(10)
        procs.children.pop("sync")
        if not restart_while_full:
            rig.make_room()
        said_full = rig.log().count("data disk full")
        sync = procs.start("sync", "sync")  # records still 'sending': stale
        if rig.filler is not None:  # it meets the full disk, says so, and keeps trying
            deadline = time.monotonic() + 60
            while rig.log().count("data disk full") == said_full:
                _stays_up(sync, 0, rig)
                assert time.monotonic() < deadline, "the restarted sync never said why"
                time.sleep(0.1)
        _stays_up(sync, 3 * RETRY_SECONDS, rig)
        if rig.filler is not None:
            assert not all_delivered(config, records)
            rig.make_room()
        wait_for(lambda: all_delivered(config, records), 90,
                 "every record once the disk has room")
        _stays_up(sync, 0, rig)
        assert receiver.running()
        assert_exactly_once_everywhere(config, records)
        sent = [e for e in audit.entries(rig.held) if e.action == "send"]
        assert sorted(e.detail["record_id"] for e in sent) == \
            sorted(r.record_id for r in records), "one 'send' line per record"
        assert audit.verify(rig.held).ok


def test_acks_lost_to_a_full_disk_and_a_kill_are_recovered_exactly_once(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    _full_disk_then_kill(tmp_path, broker.port, services, restart_while_full=False)


def test_sync_restarted_on_a_full_disk_with_records_out_keeps_running(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    _full_disk_then_kill(tmp_path, broker.port, services, restart_while_full=True)
