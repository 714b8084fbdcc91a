"""Red team 12 (issue 12): how long the kiosk waits behind the worker's file writes.

Why: eba4abe and f7e3395 moved the worker's file puts (store_page's PNG master and
thumbnail, store_paper_pdf's PDF) inside the BEGIN IMMEDIATE that writes their row,
so a removal never falls between a put and its row. Each put writes, fsyncs the file
and fsyncs its folder; the write lock is now held for all of it. On a Pi the data
disk is an SD card, where one fsync of a multi-megabyte master can take seconds, and
the web (gunicorn threads) shares the database with a 15 s busy timeout: every kiosk
or officer action that writes waits for the whole of the worker's disk time, and past
15 s gets "database is locked", which the web shows as the generic error page (500,
errors.to_web_error: an sqlite3.OperationalError that is not a full disk).

The SD card's slowness is stood in for by an os.fsync that sleeps SLOW seconds before
the real fsync, in the worker's thread only (SQLite's own fsyncs are C calls, not
touched). The kiosk is the real Flask app through its test client, opening a dossier
(a write). Its wait is compared with the same request's time measured in the same
run with nothing else writing, so the machine's speed cancels out. Before the change
the request waited only for the row (the files were written before BEGIN): both
tests pass on 48b738b, with the same stand-in.

The suggested fix keeps both guarantees: put the file before the transaction, and
under the lock only look again (stat + utime, microseconds), putting it again in the
rare case a removal took it meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image, ImageDraw

from appliance.records import dossiers, pages
from tests.helpers.signed_papers import files_of
from tests.web.forms import AGREE, post_form

pytestmark = pytest.mark.timeout(60)

SLOW = 0.3  # seconds an SD card's fsync is made to take, in the worker's thread


_kiosks = iter(range(1, 250))


def _open_dossier(app: Flask) -> float:
    """A citizen opening a dossier on the kiosk (a write): its seconds. Each from its
    own address, so the kiosk's flood limit (web/limits.py) stays out of the figures."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.0.0.{next(_kiosks)}"
    start = time.monotonic()
    r = post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE},
                  page="/kiosk/consent?procedure=tk1-ts")
    took = time.monotonic() - start
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return took


def _page() -> Image.Image:
    image = Image.new("RGB", (620, 877), "white")
    draw = ImageDraw.Draw(image)
    for y in range(40, 840, 24):
        draw.line((40, y, 580, y), fill="black", width=2)
    return image


def _slow_fsync_in(thread_name: str, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Slows that thread's fsyncs; the event is set at its first one (its disk time
    has begun)."""
    real = os.fsync
    begun = threading.Event()

    def fsync(fd: int) -> None:
        if threading.current_thread().name == thread_name:
            begun.set()
            time.sleep(SLOW)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return begun


def _kiosk_wait_behind(app: Flask, work: Callable[[], object],
                       monkeypatch: pytest.MonkeyPatch) -> tuple[float, float, float]:
    """(the request's time alone, its time while `work` runs in the worker's thread,
    how long `work` took)."""
    alone = min(_open_dossier(app) for _ in range(3))
    begun = _slow_fsync_in("worker", monkeypatch)
    took: list[float] = []
    errors: list[BaseException] = []

    def run() -> None:
        start = time.monotonic()
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        took.append(time.monotonic() - start)

    worker = threading.Thread(target=run, name="worker", daemon=True)
    worker.start()
    assert begun.wait(10), "the worker never wrote a file"
    during = _open_dossier(app)
    worker.join(20)
    assert not errors, errors
    return alone, during, took[0]


def test_a_kiosk_write_does_not_wait_for_a_pages_files(
        app: Flask, conn: sqlite3.Connection, config, monkeypatch, tmp_path: Path) -> None:
    files = files_of(conn, config)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    image = _page()
    alone, during, took = _kiosk_wait_behind(
        app, lambda: pages.store_page(conn, files, dossier_id, None, image, "Tờ khai",
                                            dpi=100), monkeypatch)
    assert dossiers.get(conn, dossier_id).page_count == 1
    assert took >= 4 * SLOW   # the stand-in for the SD card did slow the worker
    assert during < alone + SLOW, \
        f"the kiosk's write took {during:.2f} s behind one page (alone {alone:.2f} s; " \
        f"the worker's store_page took {took:.2f} s)"


def test_a_kiosk_write_does_not_wait_for_a_papers_pdf(
        app: Flask, conn: sqlite3.Connection, config, monkeypatch, tmp_path: Path) -> None:
    files = files_of(conn, config)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    stored = pages.store_page(conn, files, dossier_id, None, _page(), "Tờ khai", dpi=100)
    pdf = pages.masters_pdf(conn, files, stored.paper_id, "kiosk")
    assert pdf
    alone, during, took = _kiosk_wait_behind(
        app, lambda: pages.store_paper_pdf(conn, files, stored.paper_id, pdf, {}),
        monkeypatch)
    assert took >= 2 * SLOW
    assert during < alone + SLOW, \
        f"the kiosk's write took {during:.2f} s behind one PDF (alone {alone:.2f} s; " \
        f"the worker's store_paper_pdf took {took:.2f} s)"
