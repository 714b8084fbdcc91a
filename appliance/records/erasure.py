"""Removing a citizen's data: erasure on request before sending, and the retention purge.

Why: Law 91/2025/QH15 gives the citizen the right to ask for deletion, and the device
must not keep copies of papers longer than needed once the central office holds them
(issue 8 item 6, issue 12 item 5). Both follow the same rules:

- rows are tombstoned, never deleted: the dossier keeps its code, its papers their
  result codes, its pages their sha256, so every code ever issued stays accounted for
  and the audit trail still points at something; what goes is the personal content
  (OCR text, extracted fields, the record body) and the files (page images,
  thumbnails, PDFs);
- a file is removed only if no other live dossier names the same content (the file
  store is content-addressed: the same page scanned into two dossiers is one file);
- each removal writes an audit line in the same transaction as its tombstone;
- files are removed after that commit (a crash in between leaves files that
  `purge_due` sweeps on its next run, never a live row without its file).

Erasure is refused once the record has left (state sending or delivered): from then on
the central office holds it and the request goes there. The purge only ever touches
dossiers whose every record the central office acknowledged more than
retention.delivered_days ago: undelivered data is never purged, whatever its age.
A cancelled dossier (left at the kiosk, returned to the citizen by an officer) was
never digitized and will never be sent: its copies go retention.cancelled_days after
its last activity (its last audit line).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.records import audit
from appliance.records.errors import DossierNotFound, InvalidState, ScanInProgress
from appliance.store import jobs, outbox
from appliance.store.db import aad, open_text, transaction
from appliance.store.errors import is_disk_full
from appliance.store.files import FileStore
from appliance.system.config import Config
from appliance.system.doctor import EARLIEST_PLAUSIBLE

log = logging.getLogger(__name__)

PNG = ".png"
THUMBNAIL = ".thumb.jpg"
PDF = ".pdf"
RESULT_JSON = ".result.json"  # records.result.RESULT_SUFFIX
DAY_SECONDS = 86400.0
# How far back a run looks for files a crash left behind after an erasure or purge.
SWEEP_DAYS = 7
# A file no live row names is removed only once it is this old: the worker writes a
# page's file before the row that names it, and a file that young may be on its way.
ORPHAN_MIN_AGE_SECONDS = 86400.0
# What the file store holds, by suffix; anything else in it is left alone.
PAGE_SUFFIXES = (".png", ".thumb.jpg")
PAPER_SUFFIXES = (".pdf", ".result.json")


class AlreadySent(InvalidState):
    """The record is on its way or at the central office: erasure is theirs to do."""

    key = "error.already_sent"


@dataclass(frozen=True)
class Removal:
    """What one erasure or purge took away."""

    dossier_id: int
    pages: int
    papers: int
    files_removed: int


def _live_page_users(conn: sqlite3.Connection, sha: str, going: int = 0) -> int:
    """Live dossiers whose pages name `sha`, not counting dossier `going` (one whose
    purge removes its files before it is tombstoned: see purge)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "JOIN dossiers d ON d.id = pa.dossier_id "
        "WHERE pg.sha256=? AND d.erased_at IS NULL AND d.purged_at IS NULL AND d.id!=?",
        (sha, going)).fetchone()[0])


def _live_pdf_users(conn: sqlite3.Connection, sha: str, going: int = 0) -> int:
    return int(conn.execute(
        "SELECT COUNT(*) FROM papers pa JOIN dossiers d ON d.id = pa.dossier_id "
        "WHERE pa.pdf_sha256=? AND d.erased_at IS NULL AND d.purged_at IS NULL "
        "AND d.id!=?", (sha, going)).fetchone()[0])


def _shas(conn: sqlite3.Connection, dossier_id: int) -> tuple[list[str], list[str]]:
    pages = [str(r[0]) for r in conn.execute(
        "SELECT pg.sha256 FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "WHERE pa.dossier_id=?", (dossier_id,))]
    pdfs = [str(r[0]) for r in conn.execute(
        "SELECT pdf_sha256 FROM papers WHERE dossier_id=? AND pdf_sha256 IS NOT NULL",
        (dossier_id,))]
    return pages, pdfs


def remove_files(conn: sqlite3.Connection, files: FileStore, dossier_id: int, *,
                 going: bool = False) -> int:
    """Remove the files of a tombstoned dossier that no live dossier still names
    (going: of a dossier about to be, which does not count as their user)."""
    # Under the write lock, like store_page's put and row: no page can gain a row
    # naming one of these files between the look and the unlink.
    with transaction(conn):
        return _remove_files(conn, files, dossier_id, going)


def _remove_files(conn: sqlite3.Connection, files: FileStore, dossier_id: int,
                  going: bool) -> int:
    pages, pdfs = _shas(conn, dossier_id)
    gone = dossier_id if going else 0
    removed = 0
    for sha in set(pages):
        if _live_page_users(conn, sha, gone) == 0:
            removed += files.remove(sha, PNG) + files.remove(sha, THUMBNAIL)
    for sha in set(pdfs):
        if _live_pdf_users(conn, sha, gone) == 0:
            # with the metadata document stored beside a signed PDF (records/result.py)
            removed += files.remove(sha, PDF) + files.remove(sha, RESULT_JSON)
    return removed


def _tombstone(conn: sqlite3.Connection, dossier_id: int) -> tuple[int, int]:
    """Clear a dossier's personal columns (inside the caller's transaction)."""
    pages = conn.execute(
        "UPDATE pages SET ocr_json=NULL WHERE paper_id IN "
        "(SELECT id FROM papers WHERE dossier_id=?)", (dossier_id,)).rowcount
    papers = conn.execute("UPDATE papers SET fields_json='{}' WHERE dossier_id=?",
                          (dossier_id,)).rowcount
    return pages, papers


def _tombstone_record(conn: sqlite3.Connection, record_id: str, sha: str, why: str,
                      at: float) -> None:
    """A record's body without its content: which record, which hash, and why it went."""
    conn.execute("UPDATE records SET body_json=? WHERE record_id=?",
                 (json.dumps({"record_id": record_id, "sha256": sha, "removed": why,
                              "removed_at": at}, sort_keys=True), record_id))


def erase(conn: sqlite3.Connection, files: FileStore, dossier_id: int, officer: str,
          reason: str = "citizen request") -> Removal:
    """Erase a citizen's dossier at their request, before its record has left.

    An open or submitted dossier is cancelled; a signed one whose record still waits
    in the outbox keeps its codes, and its outbox row is withdrawn so it is never sent.
    """
    officer = officer.strip()
    if not officer:
        raise InvalidState("an officer's name is required to erase a dossier")
    at = time.time()
    with transaction(conn):
        row = conn.execute("SELECT status, erased_at, purged_at FROM dossiers WHERE id=?",
                           (dossier_id,)).fetchone()
        if row is None:
            raise DossierNotFound(f"dossier {dossier_id} not found")
        if row["erased_at"] is not None or row["purged_at"] is not None:
            raise InvalidState(f"dossier {dossier_id} is already erased")
        active = jobs.active_for_dossier(conn, dossier_id)
        if active is not None and active.state == jobs.JobState.RUNNING:
            raise ScanInProgress(f"dossier {dossier_id} has a scan running")
        records = conn.execute(
            "SELECT r.record_id, r.sha256, o.state, o.attempts FROM records r "
            "LEFT JOIN outbox o USING (record_id) WHERE r.dossier_id=?",
            (dossier_id,)).fetchall()
        # Pending again after a try (a lost connection, a restart of sync): it may be
        # at the broker or the central office already, so it counts as sent.
        if any(r["state"] not in (None, "pending") or (r["attempts"] or 0) > 0
               for r in records):
            raise AlreadySent(f"dossier {dossier_id}'s record has been sent; "
                              "ask the central office to erase it")
        conn.execute("UPDATE jobs SET state='failed', finished_at=?, error_key='error.erased', "
                     "error_detail='the dossier was erased' WHERE dossier_id=? "
                     "AND state='queued'", (at, dossier_id))
        for r in records:
            conn.execute("DELETE FROM outbox WHERE record_id=? AND state='pending'",
                         (r["record_id"],))
            _tombstone_record(conn, r["record_id"], r["sha256"], "erased", at)
        pages, papers = _tombstone(conn, dossier_id)
        conn.execute("UPDATE dossiers SET erased_at=?, status=CASE WHEN status IN "
                     "('open', 'submitted') THEN 'cancelled' ELSE status END WHERE id=?",
                     (at, dossier_id))
        audit.append(conn, audit.AuditAction.DELETE, officer, dossier_id,
                     {"reason": reason[:200], "pages": pages, "papers": papers,
                      "records_withdrawn": [r["record_id"] for r in records]})
    removed = remove_files(conn, files, dossier_id)
    log.info("dossier %s erased on request: %d page(s), %d file(s) removed",
             dossier_id, pages, removed)
    return Removal(dossier_id, pages, papers, removed)


def due_for_purge(conn: sqlite3.Connection, retention_days: int,
                  now: float | None = None) -> list[int]:
    """Signed dossiers whose every record was acknowledged over `retention_days` ago."""
    at = time.time() if now is None else now
    cutoff = at - retention_days * DAY_SECONDS
    # Counted from the later of the two clocks (outbox.COUNTED_FROM).
    rows = conn.execute(
        "SELECT d.id FROM dossiers d WHERE d.status='signed' AND d.purged_at IS NULL "
        "AND d.erased_at IS NULL "
        "AND EXISTS (SELECT 1 FROM records r JOIN outbox o USING (record_id) "
        "  WHERE r.dossier_id=d.id AND o.state='delivered') "
        "AND NOT EXISTS (SELECT 1 FROM records r LEFT JOIN outbox o USING (record_id) "
        "  WHERE r.dossier_id=d.id AND (o.state IS NULL OR o.state!='delivered' "
        f"  OR {outbox.COUNTED_FROM}>:cutoff)) ORDER BY d.id",
        {"now": at, "cutoff": cutoff}).fetchall()
    return [int(r[0]) for r in rows]


def due_cancelled(conn: sqlite3.Connection, retention_days: int,
                  now: float | None = None) -> list[int]:
    """Cancelled dossiers, not yet erased or purged, untouched for `retention_days`:
    their last audit line (a return to the citizen, a page scanned, a view) or, with
    none, their creation is older than that."""
    cutoff = (time.time() if now is None else now) - retention_days * DAY_SECONDS
    rows = conn.execute(
        "SELECT d.id FROM dossiers d WHERE d.status='cancelled' AND d.purged_at IS NULL "
        "AND d.erased_at IS NULL AND COALESCE((SELECT MAX(a.at) FROM audit_log a "
        "WHERE a.dossier_id=d.id), d.created_at) <= ? ORDER BY d.id", (cutoff,)).fetchall()
    return [int(r[0]) for r in rows]


def purge_cancelled(conn: sqlite3.Connection, files: FileStore, dossier_id: int,
                    retention_days: int, now: float | None = None) -> Removal | None:
    """Purge one cancelled dossier's copies if it is (still) due; None if it is not."""
    at = time.time() if now is None else now
    with transaction(conn):
        if dossier_id not in due_cancelled(conn, retention_days, at):
            return None  # re-checked under the write lock (touched meanwhile: kept)
        pages, papers = _tombstone(conn, dossier_id)
        conn.execute("UPDATE dossiers SET purged_at=? WHERE id=?", (at, dossier_id))
        audit.append(conn, audit.AuditAction.PURGE, "retention", dossier_id,
                     {"cancelled_days": retention_days, "pages": pages, "papers": papers})
    return Removal(dossier_id, pages, papers, remove_files(conn, files, dossier_id))


def purge(conn: sqlite3.Connection, files: FileStore, dossier_id: int, retention_days: int,
          now: float | None = None) -> Removal | None:
    """Purge one dossier's local copies if it is (still) due; None if it is not.

    The tombstones are committed before any file goes (a crash between leaves files no
    row names, which the sweep removes), but on a disk full to the last byte that
    commit cannot be written, and the run meant to give the disk back freed nothing,
    ever. Then, and only for a dossier delivered and past its retention (looked at
    again), its files go first and the commit follows in the space they leave."""
    at = time.time() if now is None else now
    try:
        return _purge(conn, files, dossier_id, retention_days, at)
    except sqlite3.OperationalError as e:
        if not is_disk_full(e) or dossier_id not in due_for_purge(conn, retention_days, at):
            raise
    freed = remove_files(conn, files, dossier_id, going=True)
    log.warning("retention: disk full, dossier %d's %d file(s) removed before its "
                "tombstones", dossier_id, freed)
    removal = _purge(conn, files, dossier_id, retention_days, at)
    return None if removal is None else dataclasses.replace(
        removal, files_removed=removal.files_removed + freed)


def _purge(conn: sqlite3.Connection, files: FileStore, dossier_id: int,
           retention_days: int, at: float) -> Removal | None:
    with transaction(conn):
        if dossier_id not in due_for_purge(conn, retention_days, at):
            return None  # re-checked under the write lock: never purge undelivered data
        records = conn.execute("SELECT record_id, sha256 FROM records WHERE dossier_id=?",
                               (dossier_id,)).fetchall()
        for r in records:
            _tombstone_record(conn, r["record_id"], r["sha256"], "purged", at)
        pages, papers = _tombstone(conn, dossier_id)
        conn.execute("UPDATE dossiers SET purged_at=? WHERE id=?", (at, dossier_id))
        audit.append(conn, audit.AuditAction.PURGE, "retention", dossier_id,
                     {"retention_days": retention_days, "pages": pages, "papers": papers,
                      "records": [r["record_id"] for r in records]})
    return Removal(dossier_id, pages, papers, remove_files(conn, files, dossier_id))


def remove_orphans(conn: sqlite3.Connection, files: FileStore, now: float | None = None,
                   min_age: float = ORPHAN_MIN_AGE_SECONDS) -> int:
    """Remove stored files that no live dossier names any more: a page a citizen
    deleted, a PDF rebuilt after a correction, a transfer of a cancelled scan, the
    signed PDFs and metadata of a sign-off killed (kill -9, power loss) between signing
    them and its commit. The file store is content-addressed and shared, so pages_edit
    keeps such files; a citizen's image must not outlive its purpose all the same.
    Only files older than `min_age` go (a younger one may be on its way to its row),
    never one a row names; a run that removed any writes one audit line.

    The candidates are found without a lock; each batch of ORPHAN_BATCH of them is
    looked at again and unlinked under the write lock, as remove_files does, so no page
    gains a row naming one of them in between (store_page puts its files under the
    same lock), and no writer waits for more than one batch (red team 9 measured 1 s
    for 3,000 files at once on a VM disk; an SD card is slower)."""
    if not files.root.is_dir():
        return 0
    live_pages, live_papers = _live_files(conn)
    cutoff = (time.time() if now is None else now) - min_age
    candidates: list[tuple[str, str]] = []
    for path in files.root.glob("*/*"):
        name = path.name
        if name.startswith(".") or len(name) <= 64:
            continue
        sha, suffix = name[:64], name[64:]
        if suffix in PAGE_SUFFIXES:
            keep = sha in live_pages
        elif suffix in PAPER_SUFFIXES:
            keep = sha in live_papers
        else:
            continue
        if not keep and _older(files.path(sha, suffix), cutoff):
            candidates.append((sha, suffix))
    removed = 0
    signed = 0
    for start in range(0, len(candidates), ORPHAN_BATCH):
        batch = candidates[start:start + ORPHAN_BATCH]
        try:
            gone, results = _sweep_batch(conn, files, batch, cutoff, min_age)
        except sqlite3.OperationalError as e:
            if not is_disk_full(e):
                raise
            # A disk full to the last byte cannot take the line first, and the sweep is
            # what gives it space back (red team 12: 0 of 6 orphans removed, run after
            # run): as purge() does, the files go first, under the lock, and the line
            # follows in the space they leave.
            gone, results = _sweep_batch_disk_full(conn, files, batch, cutoff, min_age)
        removed += gone
        signed += len(results)
    if removed:
        log.info("retention: removed %d stored file(s) no dossier names any more, %d of "
                 "them signed result(s) of a sign-off that never committed", removed,
                 signed)
    return removed


def _going(conn: sqlite3.Connection, files: FileStore, batch: list[tuple[str, str]],
           cutoff: float) -> list[tuple[str, str]]:
    """Of a batch of candidates, those still named by no live row and still old (the
    caller holds the write lock)."""
    named = _named(conn, {sha for sha, _suffix in batch})
    return [(sha, suffix) for sha, suffix in batch
            if sha not in named and _older(files.path(sha, suffix), cutoff)]


def _note_sweep(conn: sqlite3.Connection, going: list[tuple[str, str]], min_age: float,
                **more: bool) -> list[str]:
    """The audit line of a batch of removals; the signed results among them. A signed
    result no row names is what a sign-off killed after signing and before its commit
    leaves (records/result.py removes them itself on any other failure): named, since
    it is a signed document of an officer that is destroyed."""
    results = sorted(sha for sha, suffix in going if suffix == RESULT_JSON)
    audit.append(conn, audit.AuditAction.PURGE, "retention", None, {
        "op": "remove_orphans", "files_removed": len(going), "signed_results": results,
        "min_age_seconds": min_age, **more})
    return results


def _sweep_batch(conn: sqlite3.Connection, files: FileStore, batch: list[tuple[str, str]],
                 cutoff: float, min_age: float) -> tuple[int, list[str]]:
    """One batch: its line committed before any of its files goes, so a kill never
    leaves a removal without its line (one line after the last batch left every batch
    before a kill without one: red team 11); then the files looked at again under the
    lock, and any a page took meanwhile kept, with a line saying so."""
    with transaction(conn):
        going = _going(conn, files, batch, cutoff)
        if not going:
            return 0, []
        results = _note_sweep(conn, going, min_age)
    with transaction(conn):
        still = set(_going(conn, files, going, cutoff))
        kept = [item for item in going if item not in still]
        removed = sum(files.remove(sha, suffix) for sha, suffix in going
                      if (sha, suffix) in still)
        if kept:
            audit.append(conn, audit.AuditAction.PURGE, "retention", None, {
                "op": "remove_orphans_kept", "files_kept": len(kept),
                "signed_results_kept": sorted(sha for sha, suffix in kept
                                              if suffix == RESULT_JSON)})
    return removed, results


def _sweep_batch_disk_full(conn: sqlite3.Connection, files: FileStore,
                           batch: list[tuple[str, str]], cutoff: float,
                           min_age: float) -> tuple[int, list[str]]:
    """A batch on a disk too full for its line: files first, the line after. Plain
    files (pages, unsigned PDFs) go at once. A signed result goes only where the space
    it leaves, with what is free, makes room for the line (DISK_FULL_LINE_ROOM): one
    destroyed without its line was named nowhere (red team 13: a 3 KB result freed
    8 KiB, the line's commit needed about 12). Kept, it goes in a later run, line first."""
    removed = 0
    results: list[str] = []
    try:
        with transaction(conn):
            going = _going(conn, files, batch, cutoff)
            signed = {sha for sha, suffix in going if suffix == RESULT_JSON}
            plain = [item for item in going if item[0] not in signed]
            removed = sum(files.remove(sha, suffix) for sha, suffix in plain)
            held = [item for item in going if item[0] in signed]
            room = shutil.disk_usage(files.root).free + sum(
                files.path(sha, suffix).stat().st_size for sha, suffix in held
                if files.path(sha, suffix).exists())
            if held and room >= DISK_FULL_LINE_ROOM:
                log.warning("retention: disk full, removing %d signed result(s) no row "
                            "names before their audit line: %s", len(signed),
                            ", ".join(sorted(signed)))
                removed += sum(files.remove(sha, suffix) for sha, suffix in held)
                plain += held
            elif held:
                log.warning("retention: disk full, %d signed result(s) no row names kept "
                            "until there is room for their audit line", len(signed))
            if plain:
                results = _note_sweep(conn, plain, min_age, disk_full=True)
    except sqlite3.OperationalError as e:
        if not is_disk_full(e):
            raise
        log.error("retention: disk full, %d orphan file(s) removed and their audit line "
                  "not written (%s); signed results among them are named above", removed, e)
        return removed, []
    if removed:
        log.warning("retention: disk full, %d orphan file(s) removed before their audit "
                    "line", removed)
    return removed, results


# Free bytes a signed result's removal on a full disk must leave for its audit line's
# commit (a few WAL frames and their index; 12 KiB measured).
DISK_FULL_LINE_ROOM = 64 * 1024


# Candidate files looked at again and unlinked per write transaction of the sweep.
ORPHAN_BATCH = 100


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False


def _live_files(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """The pages and the papers' files (PDFs, and those of records on their way) that
    live dossiers and undelivered records name."""
    live_pages = {str(r[0]) for r in conn.execute(
        "SELECT pg.sha256 FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "JOIN dossiers d ON d.id = pa.dossier_id "
        "WHERE d.erased_at IS NULL AND d.purged_at IS NULL")}
    live_papers = {str(r[0]) for r in conn.execute(
        "SELECT pa.pdf_sha256 FROM papers pa JOIN dossiers d ON d.id = pa.dossier_id "
        "WHERE pa.pdf_sha256 IS NOT NULL AND d.erased_at IS NULL AND d.purged_at IS NULL")}
    # A record on its way names its PDFs: never take one from under the sync service.
    for r in conn.execute("SELECT r.record_id, r.body_json FROM records r "
                          "JOIN outbox o USING (record_id) WHERE o.state!='delivered'"):
        live_papers.update(_record_files(conn, r["record_id"], r["body_json"]))
    return live_pages, live_papers


def _named(conn: sqlite3.Connection, shas: set[str]) -> set[str]:
    """Of these hashes, those a live dossier's page or paper names now (the look again
    under the lock; a record on its way names only PDFs its paper row names too)."""
    marks = ",".join("?" * len(shas))
    return {str(r[0]) for r in conn.execute(
        f"SELECT pg.sha256 FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        f"JOIN dossiers d ON d.id = pa.dossier_id WHERE d.erased_at IS NULL AND "
        f"d.purged_at IS NULL AND pg.sha256 IN ({marks}) "
        f"UNION SELECT pa.pdf_sha256 FROM papers pa JOIN dossiers d ON d.id = pa.dossier_id "
        f"WHERE d.erased_at IS NULL AND d.purged_at IS NULL AND pa.pdf_sha256 IN ({marks})",
        [*shas, *shas])}


def _record_files(conn: sqlite3.Connection, record_id: str, stored: str) -> list[str]:
    body = json.loads(open_text(conn, stored, aad("records", "body_json", record_id)))
    papers = body.get("papers", []) if isinstance(body, dict) else []
    return [str(p["file"]["sha256"]) for p in papers
            if isinstance(p, dict) and isinstance(p.get("file"), dict)
            and p["file"].get("sha256")]


def restamp_early_deliveries(conn: sqlite3.Connection, now: float) -> int:
    """Acknowledgements stamped while the device's clock was wrong, before any date this
    software could run at (a board without a real-time clock starts in 1970 until NTP
    answers), count from now, once the clock is right: retention is the office's margin
    after delivery, and such a stamp would purge the local copies at the first run
    instead. A stamp ahead of time only keeps them longer, which is the safe side."""
    if now < EARLIEST_PLAUSIBLE:
        return 0  # the clock is still wrong: nothing to compare it with
    with transaction(conn):
        changed = conn.execute(
            "UPDATE outbox SET delivered_at=? WHERE state='delivered' AND delivered_at<?",
            (now, EARLIEST_PLAUSIBLE)).rowcount
    if changed:
        log.warning("retention: %d acknowledgement(s) were stamped by a clock before "
                    "%s; their retention counts from now", changed,
                    time.strftime("%Y-%m-%d", time.gmtime(EARLIEST_PLAUSIBLE)))
    return changed


def purge_due(conn: sqlite3.Connection, files: FileStore, config: Config,
              now: float | None = None) -> list[Removal]:
    """The retention run (worker idle loop or a timer): purge every dossier due, and
    sweep files a crash left behind after an earlier erasure or purge."""
    restamp_early_deliveries(conn, time.time() if now is None else now)
    done = []
    for dossier_id in due_for_purge(conn, config.retention.delivered_days, now):
        removal = purge(conn, files, dossier_id, config.retention.delivered_days, now)
        if removal is not None:
            done.append(removal)
    for dossier_id in due_cancelled(conn, config.retention.cancelled_days, now):
        removal = purge_cancelled(conn, files, dossier_id, config.retention.cancelled_days,
                                  now)
        if removal is not None:
            done.append(removal)
    since = (time.time() if now is None else now) - SWEEP_DAYS * DAY_SECONDS
    for row in conn.execute("SELECT id FROM dossiers WHERE erased_at>=? OR purged_at>=?",
                            (since, since)).fetchall():
        remove_files(conn, files, int(row[0]))
    remove_orphans(conn, files, now)
    if done:
        log.info("retention: purged the local copies of %d delivered or cancelled "
                 "dossier(s): %s",
                 len(done), ", ".join(str(r.dossier_id) for r in done))
    return done
