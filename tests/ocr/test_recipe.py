"""The recognizer recipe's new parts: real-print degradations, the real-print text mix,
and rebuilding the torch model from the shipped ONNX file (needs the `train` extra)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.recipe.charset import charset
from models.recipe.realprint import AUGS, HEIGHT, render_real_line
from models.recipe.render import usable_fonts
from models.recipe.textgen import LOOKALIKE, STACKED, TextSource


@pytest.fixture(scope="module")
def font():
    fonts = usable_fonts(False)
    if not fonts:
        pytest.skip("no recipe fonts installed (provisioning/apt-test.txt)")
    return fonts[0]


@pytest.mark.parametrize("aug", sorted(AUGS))
def test_each_degradation_alone_gives_a_line_crop(font, aug):
    rng = random.Random(3)
    only = {aug: 1.0}
    clean = render_real_line("BẢO HIỂM XÃ HỘI", font, random.Random(3), augs={})
    got = render_real_line("BẢO HIỂM XÃ HỘI", font, rng, augs=only)
    assert got.dtype == np.uint8 and got.shape[0] == HEIGHT and got.shape[1] >= 8
    # the line is still there: dark ink on lighter paper somewhere in the crop
    assert int(got.max()) - int(got.min()) > 60
    assert clean.shape[0] == HEIGHT


def test_colour_paper_seal_and_signature_reach_the_grey_crop(font):
    """Drawn in colour and turned grey like the engine does: a red seal darkens paper."""
    plain = render_real_line("HỘI NGHỊ", font, random.Random(5), augs={})
    sealed = render_real_line("HỘI NGHỊ", font, random.Random(5),
                              augs={"seal": 1.0, "colour_paper": 1.0})
    assert float(np.median(sealed)) < float(np.median(plain))


def test_real_mode_weights_headings_and_look_alike_marks():
    allowed = set(charset())
    plain, real = TextSource(11), TextSource(11, real=True)

    def share(src: TextSource, marks: str) -> float:
        lines = [src.line() for _ in range(600)]
        assert all(set(ln) <= allowed for ln in lines)
        return sum(any(c in marks for c in ln) for ln in lines) / len(lines)

    # stacked capitals ("HỘI", "NHẬN") are what lost their upper mark on real pages
    assert share(real, STACKED.upper()) > 1.3 * share(plain, STACKED.upper())
    assert share(TextSource(12, real=True), LOOKALIKE) > share(TextSource(12), LOOKALIKE)


def test_default_text_stream_is_unchanged_by_the_real_mode():
    """Old-style shards rendered again must hold the same lines as before."""
    a, b = TextSource(7), TextSource(7)
    assert [a.line() for _ in range(50)] == [b.line() for _ in range(50)]


def test_torch_model_rebuilt_from_onnx_agrees_with_onnxruntime():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from pathlib import Path

    from models.recipe.from_onnx import build, max_diff, sample_lines

    path = Path(__file__).resolve().parents[2] / "models" / "vi_rec_fp32.onnx"
    model = build(path, sample_lines(32, seed=1))
    assert max_diff(model, path, sample_lines(16, seed=2)) < 1e-3
