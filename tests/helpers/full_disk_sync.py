"""`appliance sync` as a real process on a real small data disk that a test fills to the
last byte and empties again: the rig of the sync full-disk red-team tests.

Why one rig: each of those tests (the screens' sync.state after a reconnect on a full
disk, records lost in flight while the broker is away, SIGTERM on a full disk, acks lost
to a full disk and a kill -9) needs the same set-up, and the details matter to what it
proves: an 8 MiB tmpfs, so that SQLite and the log meet ENOSPC for real; the records
queued before anything else opens the database; a connection held open as the web does
(its WAL stays); a short disk retry, so that a few seconds cover several of sync's
loops; sync's log printed when the test fails; and the filler removed whatever
happens, so that the tmpfs can be unmounted. Written once here, the tests keep only
their own steps.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.store import space
from appliance.store.db import StoreConnection, connect
from appliance.system import config as config_mod
from tests.helpers.device_records import TestRecord
from tests.helpers.processes import Processes
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import enqueue, make_config


@dataclass
class FullDiskSync:
    """What a test drives: the device `config` (its data dir on `disk`), the `records`
    queued at the start, `held` (the web's open connection), `procs` (start sync with
    `procs.start("sync", "sync")`), and `filler` while the disk is full."""

    disk: Path
    config: config_mod.Config
    records: list[TestRecord]
    held: StoreConnection
    procs: Processes
    filler: Path | None = None

    def log(self) -> str:
        """Everything `appliance sync` has written so far: the tests wait on its lines
        ("connected to", "lost:", "data disk full"), since a full disk keeps sync from
        saying anything in the database."""
        return (self.procs.log_dir / "sync.log").read_text(errors="replace")

    def alive(self, proc: subprocess.Popen[bytes]) -> None:
        """Fail, with sync's log, if `proc` has exited: a full disk must never end sync
        (under systemd that is a crash loop, then a failed unit)."""
        assert proc.poll() is None, f"appliance sync exited ({proc.returncode})\n{self.log()}"

    def fill(self) -> None:
        """Fill the data disk to the last byte (and check that it is)."""
        self.filler = fill(self.disk)
        assert free_bytes(self.disk) == 0

    def make_room(self) -> None:
        """Give the filled space back."""
        assert self.filler is not None, "the disk was not filled"
        self.filler.unlink()
        self.filler = None


@contextlib.contextmanager
def full_disk_sync(tmp_path: Path, port: int, retry_seconds: float, *, records: int,
                   pdf_sizes: tuple[int, ...] | None = None,
                   **options: Any) -> Iterator[FullDiskSync]:
    """An 8 MiB tmpfs on tmp_path/data as the device's data dir, a config for the broker
    on `port` (`options`: more make_config arguments, such as ack_timeout_seconds),
    `records` genuine records queued (of `pdf_sizes`, else enqueue's default), then the
    database held open and sync's environment set to retry a full disk every
    `retry_seconds`. Sync itself is for the test to start. On the way out: sync's log
    printed if the test failed, every process stopped, the connection closed, and the
    filler removed if the disk is still full."""
    with mounted_tmpfs(tmp_path / "data", "8m") as disk:
        device = config_mod.with_overrides(make_config(tmp_path, port, **options),
                                           paths={"data_dir": str(disk)})
        queued = (enqueue(device, records) if pdf_sizes is None
                  else enqueue(device, records, pdf_sizes=pdf_sizes))
        held = connect(device.paths.database)  # the web, holding the database (its WAL) open
        procs = Processes.for_config(tmp_path, device)
        procs.env[space.RETRY_ENV] = str(retry_seconds)
        rig = FullDiskSync(disk, device, queued, held, procs)
        try:
            yield rig
        except BaseException:
            print(procs.logs())
            raise
        finally:
            procs.stop_all()
            held.close()
            if rig.filler is not None:
                rig.filler.unlink()
