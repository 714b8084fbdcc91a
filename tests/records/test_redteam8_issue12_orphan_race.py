"""Red team 8 (issue 12): file removal raced against a page being stored with the same
content.

The file store is content-addressed and its put is idempotent: a file already at its
address with the right size is not written again (store/files.py, FileStore._write),
so its mtime stays that of the first write. A page is stored file first, row after
(records/pages.py, store_page). Both removals look for live rows, then unlink:

- the orphan sweep (erasure.remove_orphans, run by the worker hourly and by the
  nightly `appliance purge` in its own process) keeps a file no row names only while
  it is younger than ORPHAN_MIN_AGE_SECONDS, "a younger one may be on its way to its
  row"; a re-used file is on its way with its old mtime;
- the erasure of another dossier that named the same content (erase → remove_files)
  checks no age at all.

The same content comes back for real: a citizen's phone photo transferred again, a
page deleted by mistake and scanned again from the same file. Each test runs the
removal, as the other process would, in the window between the page's files and its
row, and then asks what a page needs: its PNG and its thumbnail, readable.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw

from appliance.records import dossiers, erasure, pages, pages_edit
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.system.config import Config
from tests.helpers.signed_papers import files_of

DAY = 86400.0
# How long the page waits for the other process inside its window.
WINDOW_SECONDS = 2.0
OFFICER = "Trần Thị Hoa"


def _photo() -> Image.Image:
    image = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(image).rectangle((10, 20, 110, 40), fill="black")
    ImageDraw.Draw(image).rectangle((10, 60, 80, 70), fill="black")
    return image


class _Other:
    """Another process's work, run in a thread: started once, its error kept."""

    def __init__(self, work: Callable[[], None]) -> None:
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.errors.append(e)

    def join(self) -> None:
        assert self.thread.ident is not None, "the other process never ran"
        self.thread.join(30)
        assert not self.thread.is_alive(), "the other process did not finish"
        assert not self.errors, self.errors


def _in_the_window(files: FileStore, monkeypatch: pytest.MonkeyPatch,
                   other_process: Callable[[], None]) -> _Other:
    """Start `other_process` once, in a thread as another process would run it, right
    after the page's thumbnail is put (its PNG is put just before), and give it up to
    WINDOW_SECONDS to finish before store_page goes on to its row: without a lock
    between the two it finishes inside the window. The caller joins it."""
    real = FileStore.put_derived
    other = _Other(other_process)

    def put_derived(self: FileStore, sha256: str, suffix: str, data: bytes) -> None:
        real(self, sha256, suffix, data)
        if self is files and other.thread.ident is None:
            other.thread.start()
            other.thread.join(WINDOW_SECONDS)

    monkeypatch.setattr(FileStore, "put_derived", put_derived)
    return other


def _page_whole(conn: sqlite3.Connection, files: FileStore, dossier_id: int) -> list[str]:
    """What is missing of the dossier's pages: [] when every PNG and thumbnail reads."""
    missing = []
    for paper in dossiers.get(conn, dossier_id).papers:
        for page in paper.pages:
            for suffix in (pages.PNG, pages.THUMBNAIL):
                if not files.exists(page.sha256, suffix):
                    missing.append(f"{page.sha256[:12]}{suffix}")
    return missing


def test_the_orphan_sweep_never_takes_a_file_a_page_is_being_stored_with(
        conn: sqlite3.Connection, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    files = files_of(conn, config)
    first = dossiers.create(conn, config, "khac")
    stored = pages.store_page(conn, files, first, None, _photo(), "Ảnh", dpi=200)
    # The page was scanned two days ago and deleted by the citizen since: its files
    # stay for the orphan sweep (pages_edit keeps them, the store being shared).
    pages_edit.delete_page(conn, files, config, first, stored.page_id)
    two_days_ago = time.time() - 2 * DAY
    for suffix in (pages.PNG, pages.THUMBNAIL):
        os.utime(files.path(stored.sha256, suffix), (two_days_ago, two_days_ago))

    def nightly_purge() -> None:  # `appliance purge`: its own connection and store
        other = connect(config.paths.database)
        try:
            erasure.remove_orphans(other, FileStore(config.paths.files))
        finally:
            other.close()

    window = _in_the_window(files, monkeypatch, nightly_purge)
    second = dossiers.create(conn, config, "khac")
    again = pages.store_page(conn, files, second, None, _photo(), "Ảnh", dpi=200)
    window.join()
    assert again.sha256 == stored.sha256  # the same content: the same address
    assert _page_whole(conn, files, second) == []
    assert files.read(again.sha256, pages.PNG)


def test_an_erasure_never_takes_a_file_a_page_is_being_stored_with(
        conn: sqlite3.Connection, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    files = files_of(conn, config)
    first = dossiers.create(conn, config, "khac")
    pages.store_page(conn, files, first, None, _photo(), "Ảnh", dpi=200)

    def officer_erases_the_first() -> None:  # the web process: its own connection
        other = connect(config.paths.database)
        try:
            erasure.erase(other, FileStore(config.paths.files), first, OFFICER)
        finally:
            other.close()

    window = _in_the_window(files, monkeypatch, officer_erases_the_first)
    second = dossiers.create(conn, config, "khac")
    pages.store_page(conn, files, second, None, _photo(), "Ảnh", dpi=200)
    window.join()
    assert dossiers.get(conn, first).erased_at is not None
    assert _page_whole(conn, files, second) == []


def test_an_erasure_keeps_a_file_a_live_dossier_already_names(
        conn: sqlite3.Connection, config: Config) -> None:
    """Outside the window it holds: the page's row committed, the erasure of the
    other dossier keeps the shared files, and the sweep a day later too."""
    files = files_of(conn, config)
    first = dossiers.create(conn, config, "khac")
    second = dossiers.create(conn, config, "khac")
    pages.store_page(conn, files, first, None, _photo(), "Ảnh", dpi=200)
    pages.store_page(conn, files, second, None, _photo(), "Ảnh", dpi=200)
    erasure.erase(conn, files, first, OFFICER)
    assert erasure.remove_orphans(conn, files, now=time.time() + 2 * DAY) == 0
    erasure.purge_due(conn, files, config, now=time.time() + 2 * DAY)
    assert _page_whole(conn, files, second) == []
