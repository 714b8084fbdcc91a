"""The command-line contracts, run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from appliance.system import config as config_mod


def run(args: list[str], config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if config:
        env["APPLIANCE_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "appliance", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_status_json_on_a_fresh_device(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text(config_mod.dump(config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")})))
    result = run(["status", "--json"], cfg)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["queue_depth"] == 0
    assert status["oldest_undelivered_age_s"] is None
    assert status["last_delivery_at"] is None
    assert "scanner_state" in status
    assert status["models"], "the manifest lists the OCR models"
    assert all(len(m["sha256"]) == 64 for m in status["models"])


def test_bad_config_is_refused_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[mqtt]\nhots = "broker"\n')
    result = run(["check-config"], cfg)
    assert result.returncode == 2
    assert "mqtt.hots" in result.stderr
