"""Red team: `appliance doctor` with the things it checks broken in ways its own tests
do not make. Each must be a clear fail (or warn) with a next step, never a traceback,
and never "ok" for a device that lost its data."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from unittest import mock

import pytest

from appliance.store.db import connect
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict

pytestmark = pytest.mark.timeout(60)

LOCAL = ("disk", "database", "key", "queue", "clock")


@pytest.fixture
def device(tmp_path: Path) -> tuple[Path, config_mod.Config]:
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "appliance.toml"
    path.write_text(f'[paths]\ndata_dir = "{data}"\n', encoding="utf-8")
    config = config_mod.load(path)
    connect(config.paths.database, migrate=True, key_file="").close()
    return path, config


def checks(path: Path) -> dict[str, doctor.Check]:
    skip = [n for n in doctor.SYSTEM_CHECKS if n not in LOCAL]
    return {c.name: c for c in doctor.run_checks(path, skip=skip)}


def test_a_healthy_device_is_ok(device):
    found = checks(device[0])
    assert all(found[n].verdict is Verdict.OK for n in ("database", "key", "queue")), found


@pytest.mark.parametrize("damage", ["half", "zeros", "header only", "random"])
def test_a_damaged_database_fails_with_a_next_step(device, damage):
    path, config = device
    db = config.paths.database
    raw = db.read_bytes()
    db.write_bytes({"half": raw[:len(raw) // 2], "zeros": bytes(len(raw)),
                    "header only": raw[:100], "random": os.urandom(len(raw))}[damage])
    found = checks(path)
    assert found["database"].verdict is Verdict.FAIL and found["database"].next_step
    assert found["queue"].verdict is not Verdict.OK


def test_an_emptied_database_is_not_ok(device):
    path, config = device
    config.paths.database.write_bytes(b"")
    assert checks(path)["database"].verdict is not Verdict.OK


@pytest.mark.parametrize("key", [base64.b64encode(os.urandom(16)) + b"\n", b"\x00" * 100,
                                 b"", base64.b64encode(os.urandom(32)) + b"\n"],
                         ids=["16 bytes", "binary", "empty", "another key"])
def test_a_wrong_key_file_fails_with_a_next_step(device, key):
    path, config = device
    config.paths.key_path.write_bytes(key)
    found = checks(path)["key"]
    assert found.verdict is Verdict.FAIL and found.next_step, found


def test_a_clock_in_1970_fails_with_a_next_step(device):
    with mock.patch("time.time", return_value=0.0):
        found = checks(device[0])["clock"]
    assert found.verdict is Verdict.FAIL and "timedatectl" in found.next_step


def test_a_certificate_file_that_is_garbage_fails(device, tmp_path):
    path, _ = device
    bad = tmp_path / "device.crt"
    bad.write_bytes(os.urandom(300))
    path.write_text(path.read_text(encoding="utf-8") + f'[mqtt]\ncert_file = "{bad}"\n',
                    encoding="utf-8")
    found = {c.name: c for c in doctor.run_checks(path, skip=["scanner", "units", "broker"])}
    assert found["certificate"].verdict is Verdict.FAIL
    assert "install-cert" in found["certificate"].next_step
