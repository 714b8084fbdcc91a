"""`appliance extract IMAGE... --json [--paper TYPE]`, called as cli.py would call it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from appliance.demo.synth import render_form_page
from appliance.extraction.commands import add_extract_arguments, cmd_extract


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="appliance extract")
    add_extract_arguments(parser)
    code = cmd_extract(parser.parse_args(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    page = render_form_page(41, dpi=200)
    path = tmp_path_factory.mktemp("pages") / "tk1.png"
    page.image.save(path)
    return path, page.fields


def test_json_output(page_file, capsys):
    path, truth = page_file
    code, out, _ = run([str(path), "--json", "--threads", "1"], capsys)
    doc = json.loads(out)
    assert code == 0
    assert doc["paper_type"] == "tk1-ts" and doc["paper_guessed"] is True
    for name in ("full_name", "birth_date", "cccd", "bhxh_number"):
        field = doc["fields"][name]
        assert field["value"] == truth[name] and field["flags"] == []
        assert set(field) >= {"value", "confidence", "box", "flags"}
        assert len(field["box"]) == 4 and 0 < field["confidence"] <= 1
    assert doc["pages"][0]["file"] == str(path) and doc["pages"][0]["lines"]
    assert doc["qr"] == []  # a TK1-TS form carries no code (tests/extraction/test_qr.py)
    assert {"text", "box", "confidence"} <= set(doc["pages"][0]["lines"][0])


def test_forced_paper_type(page_file, capsys):
    path, _ = page_file
    code, out, _ = run([str(path), "--json", "--paper", "cccd-front", "--threads", "1"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["paper_type"] == "cccd-front" and doc["paper_guessed"] is False


def test_an_unknown_paper_type_is_reported_not_accepted(page_file, capsys):
    path, _ = page_file
    code, out, err = run([str(path), "--json", "--paper", "to-khai-xyz", "--threads", "1"],
                         capsys)
    doc = json.loads(out)
    assert code == 1 and "unknown paper type 'to-khai-xyz'" in err
    assert doc["paper_type"] is None and "to-khai-xyz" in doc["paper_problem"]
    assert all(f["status"] != "valid" for f in doc["fields"].values())


def test_an_unreadable_image_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, out, err = run([str(bad), "--json", "--threads", "1"], capsys)
    assert code == 1 and "bad.png" in err
    assert json.loads(out)["pages"][0]["error"]


def test_plain_output(page_file, capsys):
    path, truth = page_file
    code, out, _ = run([str(path), "--threads", "1"], capsys)
    assert code == 0 and f"full_name: {truth['full_name']}" in out
    assert out.startswith("paper type: tk1-ts (guessed)")
