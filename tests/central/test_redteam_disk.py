"""Red team: `appliance central` (a real process) with its SQLite database on a small
tmpfs that fills up in the middle of a device's drain, with a real mosquitto and the
device's publisher.

Why: the store-and-forward issue promises that a receiver on a full disk acknowledges
nothing it did not store (a device marks an acknowledged record delivered and never
sends it again, so a false ack is a lost record), keeps running or is restarted by
systemd without a crash loop (the unit allows 5 restarts in 10 minutes), and stores
everything once space is back. No other test puts the central database on a disk
that fills: tests/worker/test_disk_full.py fills the device's disk only, and
tests/central/test_crash.py kills the receiver but never starves its WAL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (
    Attacker,
    Service,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_dead_letters,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)
from tests.helpers.sync_rig import central_read as _central_read

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(180)

DISK = "6m"
# Free space left on the central disk once the receiver is up: a record or two
# (150 KB PDFs cut in 4 KB chunks, sealed, plus their WAL frames), not the dozen sent.
LEFT = 384 * 1024
RECORDS = 10


def _stored(config: config_mod.Config) -> int:
    return _central_read(
        config, lambda conn: int(conn.execute(
            "SELECT COUNT(*) FROM records WHERE status='served'").fetchone()[0]), 0)


def _alive_for(proc: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    """The process stays up for `seconds` (a crash loop under systemd starts here)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, (
            f"the receiver exited ({proc.returncode}) on a full disk:\n"
            + log.read_text(errors="replace")[-3000:])
        time.sleep(0.2)


def test_a_central_disk_that_fills_mid_drain_acks_nothing_unstored_and_catches_up(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    with mounted_tmpfs(tmp_path / "central-disk", DISK) as disk:
        config = make_config(tmp_path, broker.port, ack_timeout_seconds=2.0,
                             central={"database": str(disk / "central.sqlite3")})
        config_file = write_config_file(tmp_path, config)
        log = tmp_path / "central.log"
        attacker = Attacker(broker.port)
        central = start_central(config_file, log)
        try:
            probes = probe_receiver(attacker, config)  # subscribed; its database exists
            recs = enqueue(config, RECORDS, pdf_sizes=(150_000,))
            filler = fill(disk, leave=LEFT)
            publisher = services(run_publisher, config)

            # The WAL cannot grow: the batch rolls back, the receiver says why.
            wait_for(lambda: "central database error" in log.read_text(errors="replace"),
                     60, "the receiver's disk error")
            assert _stored(config) < RECORDS, "the disk never filled: nothing tested"
            _alive_for(central, 6, log)
            # Nothing the receiver does not hold is delivered on the device.
            assert_no_false_delivery(config)
            assert not all_delivered(config, recs)

            # systemd's restart of a receiver on a disk that is still full: it must
            # come up and wait, not exit again (which would be the crash loop).
            os.kill(central.pid, signal.SIGKILL)
            central.wait(10)
            rest = fill(disk, name="rest")  # and now not one byte is left
            assert free_bytes(disk) == 0
            central = start_central(config_file, log)
            _alive_for(central, 8, log)
            assert_no_false_delivery(config)

            # Space comes back: every record arrives once, byte-identical.
            rest.unlink()
            filler.unlink()
            wait_for(lambda: all_delivered(config, recs), 120,
                     "every record once the central disk has room: "
                     + str([outbox_state(config, r.record_id) for r in recs]))
            assert central.poll() is None, log.read_text(errors="replace")[-3000:]
            assert publisher.running()
            assert_exactly_once(config, recs)
            assert_no_false_delivery(config)
            assert _stored(config) == RECORDS
            # A full disk is not the message's fault: nothing was set aside for it
            # at the central (a dead letter there is a record it will never store),
            # and the device set aside no ack. Only "stale" is allowed there: a
            # resume query redelivered after the kill is answered twice, and the
            # second answer finds its query closed.
            assert central_dead_letters(config) == probes
            kinds = device_dead_letters(config)
            assert set(kinds) <= {"total", "stale"}, kinds
        finally:
            if central.poll() is None:
                os.kill(central.pid, signal.SIGTERM)
                central.wait(15)
            attacker.close()
