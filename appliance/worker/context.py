"""What a job's steps share: the job as asked, the tools, and the one progress call.

Values that cross from one step to the next are frozen dataclasses (`ScanRequest`,
`ScannedPaper`), so a step cannot change what an earlier one decided. The tools (the
connection, the file store, the OCR engine) sit in one `Tools` object built once per
worker, and `Progress` is the only way a step reports: it writes the job's progress
(always with the paper it is filling, so a failed job still names its paper), proves
the worker alive to the web (heartbeat) and to systemd (watchdog) whenever due.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.ocr.engine import Engine
from appliance.store import jobs, space, state
from appliance.store.errors import is_disk_full
from appliance.store.files import FileStore
from appliance.system.config import Config
from appliance.system.notify import WatchdogKicker
from appliance.worker.errors import FailureKey, JobFailed

log = logging.getLogger(__name__)

Notify = Callable[[str], Any]

# The heartbeat is a committed row (an fsync on the SD card); the web calls the worker
# stalled after a minute without one, so once a second is plenty.
HEARTBEAT_SECONDS = 1.0
# How often a worker that met a full data disk tries the write again (and says so in
# the log): it waits for space instead of exiting, so nothing it holds is lost. The
# same pace as every service's start-up on a full disk (store/space.py).
DISK_RETRY_SECONDS = space.RETRY_SECONDS


@dataclass(frozen=True)
class ScanRequest:
    """A scan job as the web asked for it."""

    job_id: int
    dossier_id: int
    source: str
    title: str
    paper_id: int | None  # "scan on": append to this paper instead of starting one
    preset: str | None = None  # a one-tap preset (appliance.scanner.settings.PRESETS)
    # "scan this page again as its own image" (handwritten notes), or a retake: the new
    # image(s) go right after this ordinal of the paper (0: before its first page)
    # instead of at its end
    after_ordinal: int | None = None

    @classmethod
    def from_job(cls, job: jobs.Job) -> ScanRequest:
        if job.kind != "scan":
            raise JobFailed(FailureKey.GENERIC, f"unknown job kind {job.kind!r}")
        if job.dossier_id is None:
            raise JobFailed(FailureKey.GENERIC, f"scan job {job.id} names no dossier")
        paper_id = job.params.get("paper_id")
        preset = job.params.get("preset")
        after = job.params.get("after_ordinal")
        paper = paper_id if isinstance(paper_id, int) else None
        return cls(job.id, job.dossier_id, str(job.params.get("source", "flatbed")),
                   str(job.params.get("title", "")), paper,
                   preset if isinstance(preset, str) and preset else None,
                   after if isinstance(after, int) and not isinstance(after, bool)
                   and after >= 0 and paper is not None else None)


@dataclass(frozen=True)
class ScannedPaper:
    """What the scan step leaves: the paper filled (None if no page came), how many
    pages this job added, and the scanner fault that ended the batch early, if any."""

    paper_id: int | None
    pages: int
    fault: JobFailed | None


class Liveness:
    """Heartbeat for the web, watchdog for systemd; both only as often as they are due.

    Called from the work itself (each progress report, each idle loop), never from a
    timer thread: a stuck SANE call or a hung OCR must stop both signs of life.
    """

    def __init__(self, conn: sqlite3.Connection, notify: Notify | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = conn
        self._clock = clock
        self._last_beat: float | None = None
        self._kick = self._watchdog_kick(notify)

    @staticmethod
    def _watchdog_kick(notify: Notify | None) -> Callable[[], object] | None:
        if notify is None:
            return None
        kick = getattr(notify, "kick_if_due", None)
        if callable(kick):
            return kick
        interval = getattr(notify, "watchdog_interval", None)
        if callable(interval):
            return WatchdogKicker(notify, interval()).kick_if_due
        return None  # a plain callable (a test's list.append): no watchdog to kick

    def alive(self) -> None:
        """Beat and kick. A full disk fails the beat (a committed row) but not the
        kick: the process is alive and waiting for space, which systemd must not
        answer with a restart; the web sees the disk-full state from the disk itself."""
        now = self._clock()
        if self._last_beat is None or now - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = now
            try:
                state.beat(self._conn)
            except sqlite3.Error as e:
                if not is_disk_full(e):
                    raise
                log.warning("heartbeat not written, the data disk is full: %s", e)
        if self._kick is not None:
            self._kick()


class Progress:
    """The one progress call of a job (or of a recovery, which has no job)."""

    def __init__(self, conn: sqlite3.Connection, job_id: int | None, liveness: Liveness) -> None:
        self._conn = conn
        self.job_id = job_id
        self._liveness = liveness

    def __call__(self, step: jobs.JobStep, paper_id: int | None, **counts: int) -> None:
        """Report `step` of the paper being filled; the paper id is never left out, so
        the web reads which paper a failed scan was filling from the job itself."""
        if self.job_id is not None:
            jobs.set_progress(self._conn, self.job_id, step=step, paper_id=paper_id, **counts)
        self._liveness.alive()


@dataclass(frozen=True)
class Tools:
    """What every step may use; built once per worker process."""

    config: Config
    conn: sqlite3.Connection
    files: FileStore
    ocr: Engine | None
    liveness: Liveness
    stop: threading.Event | None = None  # the worker's stop request, for long waits

    def progress(self, job_id: int | None) -> Progress:
        return Progress(self.conn, job_id, self.liveness)

    def until_written(self, write: Callable[[], object], what: str) -> bool:
        """Run `write` (a database write that must happen, like a job's end) until it
        succeeds, waiting out a full data disk: logged once a retry, liveness kept.
        False only when the worker is asked to stop first (the write then happens at
        the next start: fail_abandoned, recover_unfinished_papers)."""
        while True:
            try:
                write()
                return True
            except (sqlite3.Error, OSError) as e:
                if not is_disk_full(e):
                    raise
                log.warning("data disk full, %s waits for space (retry in %.0f s): %s",
                            what, DISK_RETRY_SECONDS, e)
            self.liveness.alive()
            if self.stop is not None:
                if self.stop.wait(DISK_RETRY_SECONDS):
                    return False
            else:
                time.sleep(DISK_RETRY_SECONDS)
