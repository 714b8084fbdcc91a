"""No result code is issued twice: sign-off from several processes at once, and a
signing process killed (SIGKILL) after its PDFs were signed or just before its
transaction commits.

Real processes on one database file (the product's own connect, WAL, BEGIN
IMMEDIATE), started together behind a barrier file; each signs with the device key
(made once by the test process beforehand, so the processes do not race to make it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.records import audit, dossiers, result
from appliance.system.config import Config
from tests.helpers.signed_papers import scanned_forms

ROOT = Path(__file__).parents[2]

SIGNER = r"""
import json, os, signal, sys, time
from pathlib import Path
from appliance.records import dossiers, result
from appliance.store import outbox
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides

data_dir, mode, ids, barrier = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
config = with_overrides(Config(), paths={"data_dir": data_dir})
conn = connect(config.paths.database)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "kill_before_commit":  # inside the transaction: record and outbox row written
    real_enqueue = outbox.enqueue
    def enqueue_then_die(*args, **kwargs):
        real_enqueue(*args, **kwargs)
        die()
    outbox.enqueue = enqueue_then_die
elif mode == "kill_after_issue":  # signed files stored, transaction not begun
    result.apply = die

while not Path(barrier).exists():
    time.sleep(0.01)
out = []
for dossier_id in ids:
    try:
        out.append(["signed", dossier_id, dossiers.sign_off(conn, config, dossier_id,
                                                            f"Officer {os.getpid()}")])
    except Exception as e:
        out.append(["refused", dossier_id, type(e).__name__])
print(json.dumps(out))
"""


def _start(config: Config, mode: str, ids: list[int], barrier: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SIGNER, str(config.paths.data_dir), mode, json.dumps(ids),
         str(barrier)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _codes(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT result_code FROM papers WHERE result_code IS NOT NULL")]


def _named_pdfs(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT pdf_sha256 FROM papers")}


def _stored_pdfs(config: Config) -> set[str]:
    return {p.name.removesuffix(".pdf") for p in config.paths.files.glob("*/*.pdf")}


def _ready_key(config: Config) -> None:
    result.key_spec(config)  # the device key, made once before the processes start


@pytest.mark.timeout(300)
def test_concurrent_sign_off_from_several_processes_issues_each_code_once(conn, config,
                                                                         tmp_path):
    ids = [scanned_forms(conn, config, ((seed,),)).dossier_id for seed in (1, 2, 3)]
    _ready_key(config)
    barrier = tmp_path / "go"
    # three processes, each signing every dossier, in different orders
    procs = [_start(config, "sign", ids[n:] + ids[:n], barrier) for n in range(3)]
    time.sleep(0.5)
    barrier.touch()
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outcomes += json.loads(out)
    signed = [o for o in outcomes if o[0] == "signed"]
    # each dossier signed by exactly one process; the others refused, never twice
    assert sorted(o[1] for o in signed) == sorted(ids)
    assert {o[2] for o in outcomes if o[0] == "refused"} <= {"InvalidState"}
    codes = _codes(conn)
    assert len(codes) == len(set(codes)) == 3
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 3
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 3
    for dossier_id in ids:
        signs = [e for e in audit.entries(conn, dossier_id) if e.action == "sign"]
        assert len(signs) == 1
        body = json.loads(dossiers.record_of(conn, dossiers.get(conn, dossier_id)
                                             .record_id or "").body_json)
        assert body["signed_by"] == signs[0].actor
    assert audit.verify(conn).ok
    # the losers' signed files were removed again: every stored PDF is named by a row
    assert _stored_pdfs(config) == _named_pdfs(conn)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["kill_after_issue", "kill_before_commit"])
def test_a_signer_killed_between_issuing_and_committing_issues_nothing(conn, config,
                                                                       tmp_path, mode):
    forms = scanned_forms(conn, config, ((1,), (2,)))
    _ready_key(config)
    before = {p.id: p.pdf_sha256 for p in dossiers.get(conn, forms.dossier_id).papers}
    trail = len(audit.entries(conn))
    barrier = tmp_path / "go"
    barrier.touch()
    proc = _start(config, mode, [forms.dossier_id], barrier)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    # nothing of the sign-off committed: no code, no record, no outbox row, no audit line
    dossier = dossiers.get(conn, forms.dossier_id)
    assert dossier.status == "submitted" and dossier.record_id is None
    assert _codes(conn) == []
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert len(audit.entries(conn)) == trail and audit.verify(conn).ok
    assert {p.id: p.pdf_sha256 for p in dossier.papers} == before
    # signing again issues each code once, and the record names the new signed PDFs
    record_id = dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")
    signed = dossiers.get(conn, forms.dossier_id)
    codes = _codes(conn)
    assert sorted(codes) == sorted(p.result_code for p in signed.papers) and len(codes) == 2
    assert len(set(codes)) == 2
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    assert [p["file"]["sha256"] for p in body["papers"]] == [p.pdf_sha256
                                                             for p in signed.papers]
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1
    assert audit.verify(conn).ok


def _purge(config: Config, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`appliance purge` as appliance-purge.service runs it, on this test's data."""
    from appliance.system.config import dump

    cfg = tmp_path / "purge.toml"
    cfg.write_text(dump(config), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "appliance", "purge", "--json", "--config",
                           str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.timeout(300)
def test_the_retention_run_sweeps_the_signed_files_a_killed_signer_left(conn, config,
                                                                        tmp_path):
    """kill -9 after the PDFs were signed and stored, before the transaction: the
    signed PDFs and their metadata stay in the file store named by no row. The
    retention run removes them once older than its grace period, with an audit line,
    and never a file a row names, however old."""
    import os

    from appliance.records import erasure

    forms = scanned_forms(conn, config, ((1,), (2,)))
    _ready_key(config)
    barrier = tmp_path / "go"
    barrier.touch()
    proc = _start(config, "kill_after_issue", [forms.dossier_id], barrier)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    orphans = _stored_pdfs(config) - _named_pdfs(conn)
    assert len(orphans) == 2  # one signed PDF per paper, named by nothing
    metadata = {p.name.removesuffix(result.RESULT_SUFFIX)
                for p in config.paths.files.glob(f"*/*{result.RESULT_SUFFIX}")}
    assert orphans <= metadata
    # the officer signs again: the live record's signed PDFs sit beside the orphans
    dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")
    named = _named_pdfs(conn)
    assert named and not named & orphans

    _purge(config, tmp_path)  # too young: a file that new may be on its way to its row
    assert orphans <= _stored_pdfs(config)

    old = time.time() - erasure.ORPHAN_MIN_AGE_SECONDS - 3600
    for path in config.paths.files.glob("*/*"):  # every file, the named ones too
        os.utime(path, (old, old))
    trail = len(audit.entries(conn))
    _purge(config, tmp_path)
    assert _stored_pdfs(config) == named  # the orphans went, every named PDF stayed
    left = {p.name.removesuffix(result.RESULT_SUFFIX)
            for p in config.paths.files.glob(f"*/*{result.RESULT_SUFFIX}")}
    assert left == named  # the metadata documents likewise
    files = result.FileStore(config.paths.files, sealer=result.sealer_of(conn))
    for paper in dossiers.get(conn, forms.dossier_id).papers:
        result.load(files, paper.pdf_sha256 or "")  # still readable and verified
    lines = audit.entries(conn)[trail:]
    assert [(e.action, e.actor, e.dossier_id) for e in lines] == [("purge", "retention", None)]
    assert sorted(lines[0].detail["signed_results"]) == sorted(orphans)
    assert audit.verify(conn).ok
    _purge(config, tmp_path)  # nothing left to sweep: no further line
    assert len(audit.entries(conn)) == trail + 1
