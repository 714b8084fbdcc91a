"""`appliance scanner list` / `scanner test`, run as the CLI runs them, on real SANE."""

from __future__ import annotations

import argparse
import json

import pytest

from appliance.scanner import commands

pytestmark = pytest.mark.timeout(120)


def _run(sub: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    {"list": commands.add_list_arguments, "test": commands.add_test_arguments}[sub](parser)
    run = {"list": commands.cmd_list, "test": commands.cmd_test}[sub]
    return run(parser.parse_args(argv))


def test_list_says_what_was_found_by_which_backend_and_how_long(sane_rig, capsys):
    assert _run("list", ["--json", "--sane-config-dir", str(sane_rig.config_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    by_name = {d["name"]: d for d in out["devices"]}
    assert by_name["test:0"]["backend"] == "test"
    assert by_name[sane_rig.demo_name]["backend"] == "airscan"
    assert by_name[sane_rig.demo_name]["identity"].startswith("scanner:")
    assert [s["step"] for s in out["steps"]] == ["start SANE", "list devices"]
    assert all(s["seconds"] >= 0 for s in out["steps"])


def test_list_as_text(sane_rig, capsys):
    assert _run("list", ["--sane-config-dir", str(sane_rig.config_dir)]) == 0
    text = capsys.readouterr().out
    assert "ms  list devices" in text and "backend airscan" in text and "identity scanner:" in text


def test_test_scans_one_batch_and_times_each_step(sane_rig, capsys, tmp_path):
    code = _run("test", ["--json", "--sane-config-dir", str(sane_rig.config_dir),
                         "--device", sane_rig.demo_name, "--preset", "duplex",
                         "--save", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["pages"] == 6
    steps = [s["step"] for s in out["steps"]]
    assert steps[:3] == ["start SANE", "open", "capabilities"]
    assert steps[-2:] == ["end of batch", "close"]
    assert [s["side"] for s in out["steps"] if s["step"].startswith("page ")] == \
        ["front", "back"] * 3
    assert len(list(tmp_path.glob("page-*.png"))) == 6


def test_test_reports_a_fault_with_its_message_key(sane_rig, capsys):
    code = _run("test", ["--sane-config-dir", str(sane_rig.config_dir), "--device", "test:1",
                         "--option", "read_return_value=SANE_STATUS_COVER_OPEN"])
    text = capsys.readouterr().out
    try:
        assert code == 1
        assert "FAILED (scanner.cover_open) after 0 page(s)" in text
    finally:
        _run("test", ["--json", "--sane-config-dir", str(sane_rig.config_dir),
                      "--device", "test:1", "--option", "read_return_value=Default"])


def test_compare_system_times_both_configurations(sane_rig, capsys):
    """The minimal configuration against Debian's /etc/sane.d, each in a fresh process
    (3-4 s for the latter here: it probes the network)."""
    assert _run("list", ["--json", "--compare-system", "--sane-config-dir",
                         str(sane_rig.config_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    mine, system = out["comparison"]
    assert mine["config_dir"] == str(sane_rig.config_dir.resolve())
    assert system["config_dir"] == "/etc/sane.d"
    assert mine["list_s"] < 1.0
    assert mine["devices"] >= 2  # test:0 and test:1 at least


def test_write_config_gives_a_folder_that_lists_fast(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    commands.add_write_config_arguments(parser)
    folder = tmp_path / "sane"
    code = commands.cmd_write_config(parser.parse_args(
        [str(folder), "--escl", "Office Scanner=http://127.0.0.1:9/eSCL"]))
    assert code == 0 and "sane_config_dir" in capsys.readouterr().out
    assert '"Office Scanner" = http://127.0.0.1:9/eSCL, escl' in \
        (folder / "airscan.conf").read_text()
    timing = commands.time_listing(folder)
    assert timing.devices == 1 and timing.list_s < 0.5  # the configured eSCL entry only
    assert commands.cmd_write_config(parser.parse_args([str(folder), "--escl", "nourl"])) == 2
    assert commands.cmd_write_config(parser.parse_args(
        [str(folder), "--escl", "X=ftp://host"])) == 2
