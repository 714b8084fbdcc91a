"""The audit log: every touch is a chained entry, and `appliance audit verify` finds any
edit, deletion (in the middle or cut off the end) or reordering."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.records import audit, dossiers
from appliance.records import pages as page_store
from appliance.store import outbox
from appliance.store.files import FileStore
from appliance.system.config import Config, dump

REPO = Path(__file__).resolve().parents[2]


def _page(n: int) -> Image.Image:
    image = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(image).rectangle((10, 10 + n * 7, 100, 30 + n * 7), fill="black")
    return image


def signed_dossier(conn: sqlite3.Connection, config: Config) -> tuple[int, str]:
    files = FileStore(config.paths.files)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    paper = None
    for n in range(2):
        paper = page_store.store_page(conn, files, dossier_id, paper, _page(n), "Tờ khai",
                                      dpi=200).paper_id
    assert paper is not None
    page_store.store_paper_pdf(conn, files, paper, b"%PDF-1.7 x", {"values": {}})
    dossiers.submit(conn, dossier_id)
    audit.viewed(conn, "officer:Lan", {dossier_id}, "dossier")
    return dossier_id, dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")


def test_actions_are_chained_and_travel_in_the_signed_record(conn, config):
    dossier_id, record_id = signed_dossier(conn, config)
    trail = audit.entries(conn, dossier_id)
    assert [e.action for e in trail] == ["scan", "scan", "view", "sign"]
    assert trail[-1].actor == "Nguyễn Thị Lan" and trail[-1].detail["record_id"] == record_id
    assert trail[0].prev_sha256 == audit.GENESIS
    assert all(b.prev_sha256 == a.sha256 for a, b in zip(trail, trail[1:], strict=False))
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    assert [e["sha256"] for e in body["audit"]] == [e.sha256 for e in trail]
    for e in body["audit"]:  # the central office can recompute each entry's hash
        assert audit.entry_hash(e["seq"], e["at"], e["actor"], e["action"], e["dossier_id"],
                                e["detail"], e["prev_sha256"]) == e["sha256"]
    outbox.mark_delivered(conn, record_id, {"sha256": dossiers.record_of(conn, record_id).sha256})
    assert audit.entries(conn, dossier_id)[-1].action == "send"
    assert audit.verify(conn).ok


def test_the_log_refuses_update_and_delete(conn, config):
    signed_dossier(conn, config)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor='x' WHERE seq=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq=1")


def _unlock(conn: sqlite3.Connection) -> None:
    """What an attacker with the file does first: drop the append-only triggers."""
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")


def test_an_edited_entry_is_found(conn, config):
    signed_dossier(conn, config)
    _unlock(conn)
    conn.execute("UPDATE audit_log SET actor='someone else' WHERE seq=3")
    result = audit.verify(conn)
    assert not result.ok and any("entry 3" in p and "changed" in p for p in result.problems)


def test_an_edited_detail_is_found_even_with_its_hash_recomputed(conn, config):
    signed_dossier(conn, config)
    _unlock(conn)
    row = conn.execute("SELECT * FROM audit_log WHERE seq=2").fetchone()
    detail = {"paper_id": 99}
    forged = audit.entry_hash(2, row["at"], row["actor"], row["action"], row["dossier_id"],
                              detail, row["prev_sha256"])
    conn.execute("UPDATE audit_log SET detail_json=?, sha256=? WHERE seq=2",
                 (json.dumps(detail), forged))
    result = audit.verify(conn)
    assert not result.ok and any("entry 3" in p and "follow" in p for p in result.problems)


def test_a_deleted_entry_is_found(conn, config):
    signed_dossier(conn, config)
    _unlock(conn)
    conn.execute("DELETE FROM audit_log WHERE seq=2")
    assert not audit.verify(conn).ok


def test_entries_cut_off_the_end_are_found(conn, config):
    signed_dossier(conn, config)
    _unlock(conn)
    conn.execute("DELETE FROM audit_log WHERE seq=4")
    result = audit.verify(conn)
    assert not result.ok and any("cut off the end" in p for p in result.problems)


def test_reordered_entries_are_found(conn, config):
    signed_dossier(conn, config)
    _unlock(conn)
    one = dict(conn.execute("SELECT * FROM audit_log WHERE seq=1").fetchone())
    two = dict(conn.execute("SELECT * FROM audit_log WHERE seq=2").fetchone())
    conn.execute("DELETE FROM audit_log WHERE seq IN (1, 2)")
    for seq, row in ((1, two), (2, one)):
        conn.execute("INSERT INTO audit_log(seq, at, actor, action, dossier_id, detail_json, "
                     "prev_sha256, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (seq, row["at"], row["actor"], row["action"], row["dossier_id"],
                      row["detail_json"], row["prev_sha256"], row["sha256"]))
    assert not audit.verify(conn).ok


def test_appliance_audit_verify_exits_1_on_tampering(tmp_path, config, conn):
    signed_dossier(conn, config)
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(dump(config), encoding="utf-8")
    env = dict(os.environ, APPLIANCE_CONFIG=str(cfg))
    code = ("import sys, argparse; from appliance.records.audit_commands import cmd_audit; "
            "sys.exit(cmd_audit(argparse.Namespace(config=None, json=True)))")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=60, check=False)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"ok": True, "entries": 4, "problems": []}
    _unlock(conn)
    conn.execute("UPDATE audit_log SET action='view' WHERE seq=1")
    bad = run()
    assert bad.returncode == 1 and not json.loads(bad.stdout)["ok"]


def test_a_delivery_marked_in_a_batch_is_logged_as_sent(conn, config):
    dossier_id, record_id = signed_dossier(conn, config)
    sha = dossiers.record_of(conn, record_id).sha256
    assert outbox.mark_delivered_many(conn, [(record_id, {"sha256": sha})]) == [record_id]
    last = audit.entries(conn, dossier_id)[-1]
    assert (last.action, last.actor, last.detail["record_id"]) == ("send", "central", record_id)
    assert outbox.mark_delivered_many(conn, [(record_id, {"sha256": sha})]) == []
    assert [e.action for e in audit.entries(conn, dossier_id)].count("send") == 1
