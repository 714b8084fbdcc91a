"""The generated configuration reference and `appliance config check`.

The reference is what a technician has offline; these tests keep it complete (every
key documented), current (the committed file equals what the schema generates) and
useful (a bad file is answered with the key and the value expected there).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from appliance.system import config_reference as ref
from appliance.system.config import Config

REPO = Path(__file__).resolve().parents[2]
APPLIANCE = [sys.executable, "-m", "appliance"]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*APPLIANCE, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_every_key_has_a_comment_in_config_py():
    assert ref.undocumented() == []


def test_every_section_and_key_is_in_the_reference():
    text = ref.reference_markdown()
    for section in fields(Config):
        assert f"## [{section.name}]" in text
        for f in fields(getattr(Config(), section.name)):
            assert f"| `{f.name}` |" in text, f"{section.name}.{f.name}"


def test_committed_reference_is_up_to_date():
    committed = (REPO / ref.REFERENCE_PATH).read_text(encoding="utf-8")
    assert committed == ref.reference_markdown(), (
        "provisioning/config-reference.md is stale: run "
        "`.venv/bin/appliance config reference --output provisioning/config-reference.md`")


def test_reference_command_prints_the_same_markdown():
    result = run("config", "reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ref.reference_markdown()


def test_a_comment_spanning_lines_and_a_trailing_comment_are_both_read():
    keys = ref.all_keys()
    assert keys["device.sequence_first"].doc.startswith("Several kiosks of one office")
    assert "get its own" in keys["device.sequence_first"].doc.replace("gets", "get")
    assert keys["web.technician_pin"].doc.startswith("empty: the officer PIN")


@pytest.mark.parametrize(("text", "named", "expected"), [
    ('[web]\nthreads = "four"\n', "web.threads", "expected an integer"),
    ("[device]\nidd = 'x'\n", "device.idd", "did you mean 'id'?"),
    ("[mqtt]\ntls = 'yes'\n", "mqtt.tls", "expected true or false"),
    ("[scanner]\nresolution = 150\n", "scanner.resolution", "at least 200 dpi"),
    ("[fax]\nx = 1\n", "fax", "expected one of: device, paths"),
    ("[health]\ndisk_fail_mb = 9000\n", "health.disk_fail_mb", "fail <= warn"),
])
def test_config_check_names_the_key_and_the_expected_value(tmp_path, text, named, expected):
    bad = tmp_path / "appliance.toml"
    bad.write_text(text, encoding="utf-8")
    result = run("config", "check", str(bad))
    assert result.returncode == 2
    assert named in result.stderr and expected in result.stderr, result.stderr


def test_config_check_adds_the_reference_entry_of_the_key(tmp_path):
    bad = tmp_path / "appliance.toml"
    bad.write_text('[web]\nthreads = "four"\n', encoding="utf-8")
    result = run("config", "check", str(bad))
    assert "default 4" in result.stderr and "gunicorn" in result.stderr


def test_config_check_accepts_a_good_file_and_the_alias_still_works(tmp_path):
    good = tmp_path / "appliance.toml"
    good.write_text('[device]\nid = "kiosk-07"\n', encoding="utf-8")
    result = run("config", "check", str(good))
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
    alias = run("--config", str(good), "check-config")
    assert alias.returncode == 0 and 'id = "kiosk-07"' in alias.stdout


def test_the_shipped_example_file_is_valid():
    example = REPO / "provisioning" / "appliance.toml"
    result = run("config", "check", str(example))
    assert result.returncode == 0, result.stderr
