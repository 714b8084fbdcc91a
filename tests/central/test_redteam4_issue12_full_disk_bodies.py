"""Red team 4 on issue 12, item 5, at the central office: the receiver's own disk fills
while record bodies arrive in chunks (wire.RecordMessage.body_bytes: a dossier too big
for one message; central.store._chunked_body joins its chunks when the record message
comes), some with scans in chunks as well.

Why: tests/central/test_redteam_disk.py fills the central disk under scans in chunks
only. A body in chunks is a transfer of its own, named by the record's sha256, that is
taken and dropped inside the record's transaction, with a savepoint rolled back when
the record's files are still missing; and its chunk budget (counters chunk_bytes_held
and transfers_open) must come out even whatever the disk rolls back. `appliance
central` runs as a real process on a small tmpfs that fills mid-drain, is killed -9
and started again on the disk filled to the last byte, then space comes back. What
must hold: nothing is acknowledged that is not stored, the receiver stays up, every
record arrives exactly once and byte-identical, nothing is rejected or set aside for
the disk, and no chunk, transfer or charge is left over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    Service,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(120)

DISK = "6m"
LEFT = 900 * 1024    # a record or so, and part of the next body, fit; the rest waits
CHUNK_BYTES = 4096     # every body below goes in chunks


def _alive_for(proc: subprocess.Popen[bytes], seconds: float, log: Path) -> None:
    end = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, (f"the receiver exited ({proc.returncode}) on a full "
                                     "disk:\n" + log.read_text(errors="replace")[-3000:])
        if time.monotonic() >= end:
            return
        time.sleep(0.2)


def _counters_match_tables(config: config_mod.Config) -> None:
    """The chunk budget's counters agree with what the tables hold."""
    counters = central_store.read_counters(config.central.database)
    state = central_store.chunk_state(config.central.database)
    assert counters.get("transfers_open", 0) == state["transfers"], (counters, state)
    # A pending file's charge is its size and PENDING_FILE_CHARGE (pending_bytes).
    assert counters.get("chunk_bytes_held", 0) == state["bytes"] + state["pending_bytes"], \
        (counters, state)


def test_chunked_bodies_on_a_central_disk_that_fills_arrive_once_with_nothing_left(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    with mounted_tmpfs(tmp_path / "central-disk", DISK) as disk:
        config = make_config(tmp_path, broker.port, chunk_bytes=CHUNK_BYTES,
                             central={"database": str(disk / "central.sqlite3")})
        config_file = write_config_file(tmp_path, config)
        log = tmp_path / "central.log"
        attacker = Attacker(broker.port)
        central = start_central(config_file, log)
        filler: Path | None = None
        rest: Path | None = None
        try:
            probes = probe_receiver(attacker, config)
            records = (enqueue(config, 6, pdf_sizes=(400,) * 80)
                       + enqueue(config, 2, pdf_sizes=(30_000,) + (400,) * 20))
            for rec in records:
                assert len(rec.body_json.encode("utf-8")) > 4 * CHUNK_BYTES
            filler = fill(disk, leave=LEFT)
            publisher = services(run_publisher, config)

            wait_for(lambda: "central database error" in log.read_text(errors="replace"),
                     60, "the receiver's disk error")
            stored = len(central_store.list_records(config.central.database))
            assert stored < len(records), "the disk never filled: nothing tested"
            _alive_for(central, 4, log)
            assert_no_false_delivery(config)

            os.kill(central.pid, signal.SIGKILL)
            central.wait(10)
            rest = fill(disk, name="rest")  # not one byte left
            assert free_bytes(disk) == 0
            central = start_central(config_file, log)
            _alive_for(central, 6, log)
            assert_no_false_delivery(config)
            _counters_match_tables(config)

            rest.unlink()
            rest = None
            filler.unlink()
            filler = None
            wait_for(lambda: all_delivered(config, records), 60,
                     "every record once the central disk has room: "
                     + str([outbox_state(config, r.record_id) for r in records]))
            _alive_for(central, 0, log)
            assert publisher.running()
            assert_exactly_once(config, records)
            assert_no_false_delivery(config)
            assert len(central_store.list_records(config.central.database)) == len(records)
            assert central_store.list_rejections(config.central.database) == []
            assert central_dead_letters(config) == probes
            _counters_match_tables(config)
            wait_for(lambda: central_store.chunk_state(config.central.database)
                     == NO_CHUNK_STATE, 10, "no chunk left at the receiver: "
                     + str(central_store.chunk_state(config.central.database)))
            _counters_match_tables(config)
        finally:
            if central.poll() is None:
                os.kill(central.pid, signal.SIGTERM)
                central.wait(15)
            attacker.close()
            for path in (rest, filler):
                if path is not None:
                    path.unlink()
