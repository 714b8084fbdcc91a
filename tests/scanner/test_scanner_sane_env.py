"""The private SANE configuration folder."""

from __future__ import annotations

import pytest

from appliance.scanner.sane_env import airscan_conf, write_sane_config


def test_writes_only_wanted_backends(tmp_path):
    out = write_sane_config(tmp_path / "sane", backends=("test", "airscan"),
                            airscan_url="http://127.0.0.1:8090/eSCL")
    dll = [ln for ln in (out / "dll.conf").read_text().splitlines()
           if ln and not ln.startswith("#")]
    assert dll == ["test", "airscan"]
    test_conf = (out / "test.conf").read_text()
    assert "geometry_max 300.0" in test_conf and "br_y 297.0" in test_conf
    air = (out / "airscan.conf").read_text()
    assert '"BHXH Demo Scanner" = http://127.0.0.1:8090/eSCL, escl' in air
    assert "discovery = disable" in air


def test_airscan_only_by_default(tmp_path):
    out = write_sane_config(tmp_path)
    assert not (out / "test.conf").exists()
    assert "[devices]" in (out / "airscan.conf").read_text()


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_sane_config(tmp_path, backends=("epson2",))
    with pytest.raises(ValueError):
        airscan_conf([('bad"name', "http://127.0.0.1:1/eSCL")])
    with pytest.raises(ValueError):
        airscan_conf([("ok", "ftp://x")])
