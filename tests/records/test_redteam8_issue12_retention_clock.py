"""Red team 8 (issue 12): the retention purge against the device's clock and the acks'
statuses.

A Raspberry Pi has no real-time clock. Raspberry Pi OS ships `fake-hwclock`, which
sets the clock at boot to the time saved at the last shutdown: a device kept in a
cupboard for three months boots three months in the past, not in 1970, and runs so
until NTP answers. The sync service needs no NTP to reach a broker on the office LAN,
so acks can arrive then; `restamp_early_deliveries` only catches stamps before
EARLIEST_PLAUSIBLE (2026-01-01). Every ack carries the central office's own time,
signed (`received_at`, kept in the outbox row's ack_json), which says the stamp is
wrong.

What holds (plain tests): a dossier goes only once every record it has was
acknowledged, and a purge never takes a page file that a dossier still waiting for its
ack shares; a CONTESTED ack (our bytes held aside at the central) counts as delivered
from the device's stamp. CONFLICT acks, which must count for nothing, are followed
through the sync service in tests/sync/test_redteam8_issue12_erase_race.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from appliance.records import audit, dossiers, erasure
from appliance.store import outbox
from appliance.store.files import FileStore
from appliance.sync import wire
from appliance.system.config import Config, with_overrides
from tests.helpers.device_records import add_record

DAY = 86400.0
RETENTION_DAYS = 30


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # device id as add_record signs with (kiosk-01), data in this test's folder
    return with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                          device={"id": "kiosk-01"},
                          retention={"delivered_days": RETENTION_DAYS})


def _signed(conn: sqlite3.Connection, config: Config) -> tuple[int, str, FileStore]:
    rec = add_record(conn, config.paths.files)
    record = dossiers.record_of(conn, rec.record_id)
    dossier_id = conn.execute("SELECT dossier_id FROM records WHERE record_id=?",
                              (rec.record_id,)).fetchone()[0]
    assert record.sha256 == rec.sha256
    return int(dossier_id), rec.record_id, FileStore(config.paths.files)


def _page_files(conn: sqlite3.Connection, dossier_id: int) -> list[tuple[str, str]]:
    d = dossiers.get(conn, dossier_id)
    return ([(pg.sha256, ".png") for p in d.papers for pg in p.pages]
            + [(p.pdf_sha256, ".pdf") for p in d.papers if p.pdf_sha256])


def _ack(conn: sqlite3.Connection, record_id: str, status: wire.AckStatus, *,
         central_at: float, device_now: float) -> list[str]:
    """What the sync service does with one verified ack: mark_received_many with the
    record as claimed, the central's signed time in the receipt, the device's clock."""
    items = {i.record_id: i for i in outbox.claim_many(conn, 10, now=device_now)}
    sha = outbox.record_sha256(conn, record_id)
    assert sha is not None
    receipt = outbox.Receipt(central_at, "kiosk-01", "c2ln")
    return outbox.mark_received_many(
        conn, [(record_id, sha, status.value, receipt, items.get(record_id))],
        now=device_now)


def test_an_ack_stamped_by_a_stale_clock_keeps_its_whole_retention(
        conn: sqlite3.Connection, config: Config) -> None:
    # Signed the evening before the device was put away; fake-hwclock saved that time.
    dossier_id, record_id, files = _signed(conn, config)
    kept = _page_files(conn, dossier_id)
    shutdown = time.time()
    # 90 days later it is switched on again: the clock reads `shutdown` (+1 minute to
    # boot) until NTP answers; the broker on the LAN answers first, the central too.
    booted = shutdown + 60
    real_now = shutdown + 90 * DAY
    assert booted > erasure.EARLIEST_PLAUSIBLE  # not caught as a 1970 clock
    assert _ack(conn, record_id, wire.AckStatus.STORED, central_at=real_now,
                device_now=booted) == [record_id]
    ack = json.loads(conn.execute("SELECT ack_json FROM outbox WHERE record_id=?",
                                  (record_id,)).fetchone()[0])
    assert ack["received_at"] == real_now  # the central's time is on the device

    # NTP answered; the nightly run one minute after the central stored the record.
    done = erasure.purge_due(conn, files, config, now=real_now + 60)
    assert [r.dossier_id for r in done] == []
    assert dossiers.get(conn, dossier_id).purged_at is None
    assert all(files.exists(sha, suffix) for sha, suffix in kept)


def test_a_dossier_goes_only_once_its_every_record_is_acknowledged(
        conn: sqlite3.Connection, config: Config) -> None:
    """Two dossiers signed together, one acked: the other is never due, and a purge of
    the first leaves the second's page (shared content: add_record draws the same page
    image for every dossier) and its PDF, which the sync service still has to send."""
    first, first_record, files = _signed(conn, config)
    second, second_record, _ = _signed(conn, config)
    second_files = _page_files(conn, second)
    shared = set(_page_files(conn, first)) & set(second_files)
    assert shared, "the two dossiers share a page file (the test relies on it)"
    now = time.time()
    assert _ack(conn, first_record, wire.AckStatus.STORED, central_at=now,
                device_now=now) == [first_record]
    outbox.retry_many(conn, [second_record], delay=0, now=now)  # its ack never came
    due = now + RETENTION_DAYS * DAY + 1
    assert [r.dossier_id for r in erasure.purge_due(conn, files, config, now=due)] == [first]
    assert dossiers.get(conn, second).purged_at is None
    assert all(files.exists(sha, suffix) for sha, suffix in second_files)
    assert erasure.purge_due(conn, files, config, now=due + 3650 * DAY) == []
    assert audit.verify(conn).ok


def test_a_contested_ack_counts_as_delivered_with_the_centrals_time_kept(
        conn: sqlite3.Connection, config: Config) -> None:
    """CONTESTED: our bytes are on the central disk (held aside for an operator); the
    device is done and the dossier goes after the retention, not before."""
    dossier_id, record_id, files = _signed(conn, config)
    now = time.time()
    assert _ack(conn, record_id, wire.AckStatus.CONTESTED, central_at=now,
                device_now=now) == [record_id]
    assert erasure.purge_due(conn, files, config, now=now + RETENTION_DAYS * DAY - 1) == []
    assert [r.dossier_id for r in erasure.purge_due(
        conn, files, config, now=now + RETENTION_DAYS * DAY)] == [dossier_id]
    line = [e for e in audit.entries(conn, dossier_id) if e.action == "send"]
    assert line and line[-1].detail.get("ack_status") == "contested"
