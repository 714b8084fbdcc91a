"""Red team 8 (issue 12): erasure on request and the retention purge raced against
delivery, with a real mosquitto, `appliance central` and `appliance sync` as real
processes, and the sync service's handling of a signed CONFLICT ack.

The rule: a citizen's pages and a record never leave the device before the central
office holds them byte-identical. For erasure on request that means all or nothing
at the central: an erasure that succeeds must leave the central with nothing of the
record (no record row, served or held, no file, no chunk, no transfer), and one
refused (AlreadySent) must end with the record delivered and held byte-identical. For
the purge: only what the central holds goes, a CONFLICT ack (our bytes held aside,
other bytes served) is no delivery and leaves the record erasable by no one but the
central.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.records import audit, dossiers, erasure
from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, publisher, wire
from appliance.system.config import with_overrides
from appliance.system.process import stop_process
from tests.helpers.device_records import TestRecord, add_record
from tests.helpers.sync_rig import (
    CENTRAL,
    NO_CHUNK_STATE,
    SYNC,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_state,
    enqueue,
    make_config,
    service_process,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(150)

DAY = 86400.0
OFFICER = "Phạm Thị Thu"
ROUNDS = 28


def _dossier_of(conn: sqlite3.Connection, record_id: str) -> int:
    return int(conn.execute("SELECT dossier_id FROM records WHERE record_id=?",
                            (record_id,)).fetchone()[0])


def _central_knows(config, rec: TestRecord) -> list[str]:
    """Anything of the record at the central: its rows (served or held), its files."""
    found = [f"record {r['status']}" for r in
             central_store.list_records(config.central.database)
             + central_store.list_held(config.central.database)
             if r["record_id"] == rec.record_id]
    found += [f"file {sha[:12]}" for sha in rec.file_shas
              if central_store.get_file(config.central.database, sha) is not None]
    return found


def test_erasure_raced_against_a_live_sync_is_all_or_nothing_at_the_central(
        tmp_path: Path, broker) -> None:
    """Dossiers signed one by one while sync drains, each erased at once or a moment
    later (0 to 0.6 s: the sync service claims every 0.2 s), small and chunked ones."""
    config = with_overrides(make_config(tmp_path, broker.port),
                            retention={"delivered_days": 30})
    config_file = write_config_file(tmp_path, config)
    first = enqueue(config, 1)  # the device database and its key exist before the services
    conn = connect(config.paths.database)
    procs: list[subprocess.Popen[bytes]] = []
    central_log, sync_log = tmp_path / "central.log", tmp_path / "sync.log"
    rng = random.Random(12)
    erased: list[TestRecord] = []
    sent: list[TestRecord] = list(first)
    try:
        procs.append(service_process(CENTRAL, config_file, central_log))
        procs.append(service_process(SYNC, config_file, sync_log))
        wait_for(lambda: device_state(config, "sync.state") == "connected", 30, "sync up")
        for n in range(ROUNDS):
            sizes = (20_000,) if n % 3 == 0 else (3_000,)  # 4096-byte chunks: 5 of them
            rec = add_record(conn, config.paths.files, device_id=config.device.id,
                             pdf_sizes=sizes)
            time.sleep(rng.uniform(0.0, 0.6))
            try:
                erasure.erase(conn, FileStore(config.paths.files),
                              _dossier_of(conn, rec.record_id), OFFICER)
            except erasure.AlreadySent:
                sent.append(rec)
            else:
                erased.append(rec)
        assert erased and len(sent) > 1, (f"the race did not happen: {len(erased)} erased, "
                                 f"{len(sent)} refused")
        wait_for(lambda: all_delivered(config, sent), 60, "every refused erasure delivered")
        # Whatever is still on its way is given time to arrive (it must not).
        time.sleep(1.5)
        for proc in procs:
            assert proc.poll() is None, (central_log.read_text() + sync_log.read_text())
        assert_exactly_once(config, sent)
        assert_no_false_delivery(config)
        knows = {rec.record_id: _central_knows(config, rec) for rec in erased}
        assert all(v == [] for v in knows.values()), knows
        assert central_store.chunk_state(config.central.database) == NO_CHUNK_STATE
        for rec in erased:
            assert outbox.state_of(conn, rec.record_id) is None
            d = dossiers.get(conn, _dossier_of(conn, rec.record_id))
            assert d.erased_at is not None and d.code
        # The retention run, a month on, while sync still runs: the delivered ones go,
        # nothing else; the central still holds every one of them.
        files = FileStore(config.paths.files)
        done = erasure.purge_due(conn, files, config, now=time.time() + 31 * DAY)
        assert sorted(r.dossier_id for r in done) == sorted(
            _dossier_of(conn, r.record_id) for r in sent)
        assert_no_false_delivery(config)
        for rec in sent:
            for sha in rec.file_shas:
                assert central_store.get_file(config.central.database, sha) is not None
                assert not files.exists(sha, ".pdf")
        assert audit.verify(conn).ok
    finally:
        conn.close()
        for proc in procs:
            stop_process(proc, timeout=15, group=False)


def test_a_signed_conflict_ack_delivers_nothing_and_leaves_nothing_to_purge(
        tmp_path: Path) -> None:
    """The sync service handed a correctly signed CONFLICT ack for our bytes: the
    central serves other bytes under the id. Not delivered, not purgeable whatever the
    clock, not erasable on the device (it has been sent); the STORED ack after the
    claim delivers it and only then does the retention count."""
    config = with_overrides(make_config(tmp_path, 1), retention={"delivered_days": 30})
    recs = enqueue(config, 2)
    conn = connect(config.paths.database)
    try:
        pub = publisher._Publisher(config, conn, threading.Event(), lambda _m: None, 16)
        pub.claim()
        assert set(pub.flights) == {r.record_id for r in recs}
        key = acksig.load_private_key(tmp_path / "keys" / "central-ack.key")
        now = time.time()
        conflict = acksig.sign(key, wire.BatchAck(config.device.id, now, tuple(
            wire.AckItem(r.record_id, r.sha256, wire.AckStatus.CONFLICT) for r in recs)))
        pub.handle_ack(pub.ack_topic, wire.encode_batch_ack(conflict), False)
        pub.mark_acked()
        files = FileStore(config.paths.files)
        for rec in recs:
            assert outbox.state_of(conn, rec.record_id) is OutboxState.PENDING
            assert rec.record_id in pub.claims  # re-sent with claim=true
        for later in (now + 31 * DAY, now + 3650 * DAY):
            assert erasure.purge_due(conn, files, config, now=later) == []
        with pytest.raises(erasure.AlreadySent):
            erasure.erase(conn, files, _dossier_of(conn, recs[0].record_id), OFFICER)

        pub.claim()
        stored = acksig.sign(key, wire.Ack(recs[0].record_id, recs[0].sha256, now + 5,
                                           config.device.id, wire.AckStatus.STORED))
        pub.handle_ack(pub.ack_topic, wire.encode_ack(stored), False)
        pub.mark_acked()
        assert outbox.state_of(conn, recs[0].record_id) is OutboxState.DELIVERED
        assert outbox.state_of(conn, recs[1].record_id) is not OutboxState.DELIVERED
        done = erasure.purge_due(conn, files, config, now=time.time() + 31 * DAY)
        assert [r.dossier_id for r in done] == [_dossier_of(conn, recs[0].record_id)]
        assert all(files.exists(sha, ".pdf") for sha in recs[1].file_shas)
        assert audit.verify(conn).ok
    finally:
        conn.close()
