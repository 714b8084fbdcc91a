"""`appliance doctor`: each check's verdict on a healthy and on a broken device.

The broken devices are made for real (a damaged database file, a wrong key, a full
threshold, a dead broker port, a newer schema) so the doctor is judged on what a
technician would meet, and the command is run as a technician runs it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.store.db import connect
from appliance.system import crypto, doctor
from appliance.system.config import Config, with_overrides
from appliance.system.doctor import Check, Verdict

REPO = Path(__file__).resolve().parents[2]


def device(tmp_path: Path, **sections: dict[str, object]) -> Config:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return with_overrides(Config(), paths={"data_dir": str(data)}, **sections)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text, encoding="utf-8")
    return path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def doctor_cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", "--config", str(cfg), "doctor",
                           "--skip", "scanner", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_healthy_database_key_and_disk(tmp_path):
    config = device(tmp_path)
    connect(config.paths.database).close()  # migrated, key made beside it (demo layout)
    assert doctor.check_database(config).verdict is Verdict.OK
    assert doctor.check_key(config).verdict is Verdict.OK
    assert "matches the database" in doctor.check_key(config).summary
    assert doctor.check_disk(config).verdict is Verdict.OK
    assert doctor.check_queue(config).verdict is Verdict.OK


def test_damaged_database_fails_quick_check(tmp_path):
    config = device(tmp_path)
    conn = connect(config.paths.database)
    conn.execute("CREATE TABLE filler (x TEXT)")
    conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 400)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = bytearray(config.paths.database.read_bytes())
    page = 4096
    for offset in range(page * 3, len(raw) - page, page):  # trash b-tree pages, keep page 1
        raw[offset:offset + 64] = b"\xff" * 64
    config.paths.database.write_bytes(bytes(raw))
    check = doctor.check_database(config)
    assert check.verdict is Verdict.FAIL, check
    assert check.next_step


def test_wrong_key_fails_and_missing_named_key_fails(tmp_path):
    config = device(tmp_path)
    connect(config.paths.database).close()
    key = config.paths.key_path
    key.unlink()
    crypto.create_key(key)  # another key in the same place
    check = doctor.check_key(config)
    assert check.verdict is Verdict.FAIL and "check value differs" in check.summary
    named = with_overrides(config, paths={"key_file": str(tmp_path / "absent.key")})
    assert doctor.check_key(named).verdict is Verdict.FAIL


def test_disk_thresholds(tmp_path):
    huge = 10 ** 9  # MB: more than any test machine has free
    assert doctor.check_disk(device(tmp_path, health={"disk_warn_mb": huge, "disk_fail_mb": 0})
                             ).verdict is Verdict.WARN
    assert doctor.check_disk(device(tmp_path, health={"disk_warn_mb": huge,
                                                      "disk_fail_mb": huge})
                             ).verdict is Verdict.FAIL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_broker_unconfigured_reachable_and_dead(tmp_path):
    assert doctor.check_broker(device(tmp_path)).verdict is Verdict.WARN
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        up = device(tmp_path, mqtt={"host": "127.0.0.1", "port": port})
        assert doctor.check_broker(up).verdict is Verdict.OK
    dead = device(tmp_path, mqtt={"host": "127.0.0.1", "port": _free_port()})
    check = doctor.check_broker(dead)
    assert check.verdict is Verdict.WARN and "unreachable" in check.summary


def test_scanner_listing_with_the_sane_test_backend(tmp_path):
    sane_dir = tmp_path / "sane"
    sane_dir.mkdir()
    (sane_dir / "dll.conf").write_text("test\n", encoding="utf-8")
    config = device(tmp_path, scanner={"sane_config_dir": str(sane_dir)})
    check = doctor.check_scanner(config)
    assert check.verdict is Verdict.OK and "test:0" in check.summary, check
    missing = device(tmp_path, scanner={"sane_config_dir": str(sane_dir),
                                        "device": "fujitsu:absent"})
    assert doctor.check_scanner(missing).verdict is Verdict.FAIL
    (sane_dir / "dll.conf").write_text("\n", encoding="utf-8")
    assert doctor.check_scanner(config).verdict is Verdict.WARN


def test_a_check_that_raises_is_reported_not_fatal(tmp_path):
    cfg = write_config(tmp_path, f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')

    def broken(_config: Config) -> Check:
        raise RuntimeError("boom")

    checks = by_name(doctor.run_checks(cfg, {"broken": broken}, skip=["scanner"]))
    assert checks["broken"].verdict is Verdict.FAIL and "boom" in checks["broken"].summary
    assert checks["disk"].verdict is Verdict.OK


def test_cli_json_and_exit_status(tmp_path):
    cfg = write_config(tmp_path, f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    result = doctor_cli(cfg, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    names = {c["name"]: c for c in report["checks"]}
    assert {"config", "disk", "database", "key", "clock", "broker", "models",
            "schema"} <= set(names)
    assert names["models"]["verdict"] == "ok"
    assert report["ok"] is True


def test_cli_fails_on_a_bad_config_naming_the_key(tmp_path):
    cfg = write_config(tmp_path, "[web]\nthreads = 'four'\n")
    result = doctor_cli(cfg)
    assert result.returncode == 1
    assert "fail  config" in result.stdout and "web.threads" in result.stdout


def test_cli_newer_schema_is_a_failure_with_a_next_step(tmp_path):
    data = tmp_path / "data"
    connect(data / "appliance.sqlite3").close()
    conn = sqlite3.connect(data / "appliance.sqlite3")
    conn.execute("PRAGMA user_version=999")
    conn.close()
    cfg = write_config(tmp_path, f'[paths]\ndata_dir = "{data}"\n')
    result = doctor_cli(cfg)
    assert result.returncode == 1
    assert "rollback is refused" in result.stdout and "->" in result.stdout


def test_quiet_prints_problems_only(tmp_path):
    cfg = write_config(tmp_path, f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    result = doctor_cli(cfg, "--quiet", "--skip", "broker", "--skip", "database",
                        "--skip", "key", "--skip", "schema", "--skip", "queue",
                        "--skip", "clock")
    assert result.returncode == 0
    assert result.stdout.strip() == "", result.stdout


@pytest.mark.parametrize("state", ["failed", "inactive"])
def test_units_verdicts_from_systemctl(monkeypatch, tmp_path, state):
    monkeypatch.setattr(doctor, "under_systemd", lambda: True)
    monkeypatch.setattr(doctor, "_systemctl_like", lambda argv: (
        f"LoadState=loaded\nActiveState={state}\nSubState=dead\nNRestarts=0"))
    (check,) = doctor.check_units(device(tmp_path), ["appliance-web.service"])
    assert check.verdict is (Verdict.FAIL if state == "failed" else Verdict.WARN)
    assert "appliance-web.service" in check.next_step


def test_a_unit_whose_condition_failed_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "under_systemd", lambda: True)
    monkeypatch.setattr(doctor, "_systemctl_like", lambda argv: (
        "LoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\n"
        "ConditionResult=no"))
    (check,) = doctor.check_units(device(tmp_path), ["appliance-kiosk.service"])
    assert check.verdict is Verdict.SKIP
