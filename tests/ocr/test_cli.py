"""`appliance ocr --json` contract: one JSON object, pages with file/seconds/lines, NFC text."""

from __future__ import annotations

import argparse
import json
import unicodedata

from appliance.bench.corpus import render_page
from appliance.bench.ocr import flagging, write_corpus
from appliance.ocr.commands import add_ocr_arguments, cmd_ocr


def _run(argv, capsys):
    p = argparse.ArgumentParser()
    add_ocr_arguments(p)
    rc = cmd_ocr(p.parse_args(argv))
    return rc, capsys.readouterr()


def test_ocr_json_contract(tmp_path, capsys):
    page = render_page(7, dpi=200, degraded=False)
    img = tmp_path / "p.png"
    page.image.save(img)
    rc, out = _run([str(img), "--json"], capsys)
    assert rc == 0
    doc = json.loads(out.out)
    assert list(doc) == ["pages"]
    (pg,) = doc["pages"]
    assert pg["file"] == str(img)
    assert isinstance(pg["seconds"], float)
    assert len(pg["lines"]) >= 0.8 * len(page.lines)
    ys = []
    for ln in pg["lines"]:
        assert set(ln) == {"text", "box", "confidence"}
        assert ln["text"] == unicodedata.normalize("NFC", ln["text"])
        x0, y0, x1, y1 = ln["box"]
        assert 0 <= x0 < x1 <= page.image.width and 0 <= y0 < y1 <= page.image.height
        assert 0.0 <= ln["confidence"] <= 1.0
        ys.append((y0 + y1) / 2)
    # reading order: first line is the top of the page, last line the bottom
    assert ys[0] == min(ys) or abs(ys[0] - min(ys)) < 40
    assert "VIỆT NAM" in pg["lines"][0]["text"] or "VIỆT NAM" in pg["lines"][1]["text"]


def test_bad_page_in_a_batch_does_not_stop_it(tmp_path, capsys):
    good = tmp_path / "good.png"
    render_page(8, dpi=200, degraded=False).image.save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    rc, out = _run([str(bad), str(good), "--json"], capsys)
    assert rc == 1
    doc = json.loads(out.out)
    assert doc["pages"][0]["lines"] == [] and "bad.jpg" in doc["pages"][0]["error"]
    assert doc["pages"][1]["lines"]
    assert "bad.jpg" in out.err


def test_bench_can_use_the_demo_scanners_pages(tmp_path):
    """`bench ocr --renderer forms`: TK1-TS pages served as JPEG, with their truth."""
    from PIL import Image

    [truth] = write_corpus(tmp_path, 1, 31, "forms")
    with Image.open(tmp_path / truth["file"]) as img:
        assert img.format == "PNG" and img.size[0] > 1000
    assert truth["dpi"] == 200 and truth["font"] == "forms"
    assert {k for k, _ in truth["values"]} == {"name", "date", "id"}
    assert any(v in line for _, v in truth["values"] for line in truth["lines"])


def test_flagging_counts_caught_and_needless_flags():
    truth = {"p.png": {"lines": ["Nơi sinh: Hà Nội", "Số 24, đường Ngô Quyền"]}}
    result = {"pages": [{"file": "p.png",
                         "lines": ["Hà Nội", "Hà Nộị", "Ngô Quyện", "Số 24,"],
                         "least_sure": [0.95, 0.41, 0.88, 0.52]}]}
    assert flagging(result, truth) == {"misread_lines_flagged_pct": 50.0,
                                       "good_lines_flagged_pct": 50.0, "misread_lines": 2}


def test_bench_worker_times_the_recognizer_model_apart(tmp_path):
    """The bench's worker reports the recognizer model's own run time per page, which
    lies inside the stages that run it (recognition and the orientation vote)."""
    from appliance.bench.ocr import run_engine

    write_corpus(tmp_path, 1, 5)
    [page] = run_engine("int8", tmp_path, 1, None)["pages"]
    stages = page["stages"]
    assert 0.0 < stages["recognizer_network"] <= stages["recognize"] + stages["orient"]
    assert stages["recognizer_network"] < page["seconds"]
