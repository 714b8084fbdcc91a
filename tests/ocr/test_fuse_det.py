"""The detector recipe's graph rewrite (models/recipe/fuse_det.py) keeps every output,
on small graphs built for the cases the shipped detector happens not to have: unnamed
convolutions without bias, a negative scale, a bias shared by two convolutions, a
divisor that is not a scalar. Needs `onnx` (the `train` extra); CI checks the
committed fused detector through the OCR tests instead."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.recipe.fuse_det import fuse  # noqa: E402

RNG = np.random.default_rng(7)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _affine(x: str, out: str, s: float, b: float, tag: str) -> tuple[list, list]:
    nodes = [helper.make_node("Mul", [x, f"s_{tag}"], [f"m_{tag}"]),
             helper.make_node("Add", [f"m_{tag}", f"b_{tag}"], [out])]
    return nodes, [_init(f"s_{tag}", [s]), _init(f"b_{tag}", [b])]


def _hard_swish(x: str, out: str, tag: str, divisor: object) -> tuple[list, list]:
    nodes = [helper.make_node("Add", [x, "three"], [f"a_{tag}"]),
             helper.make_node("Clip", [f"a_{tag}", "zero", "six"], [f"c_{tag}"]),
             helper.make_node("Mul", [x, f"c_{tag}"], [f"p_{tag}"]),
             helper.make_node("Div", [f"p_{tag}", f"d_{tag}"], [out])]
    return nodes, [_init(f"d_{tag}", divisor)]


def _graph() -> onnx.ModelProto:
    nodes, inits = [], [_init("three", [3.0]), _init("zero", 0.0), _init("six", 6.0),
                        _init("w1", RNG.normal(size=(4, 2, 3, 3))),
                        _init("w2", RNG.normal(size=(4, 2, 3, 3))),
                        _init("w3", RNG.normal(size=(4, 1, 3, 3))),
                        _init("w4", RNG.normal(size=(4, 1, 3, 3))),
                        _init("shared_bias", RNG.normal(size=4))]
    # Two unnamed convolutions without bias, each with its own scalar affine.
    nodes.append(helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1]))
    for conv, out, s, b, tag in (("c1", "y1", -0.7, 0.3, "1"), ("c2", "y2", 1.9, -1.1, "2")):
        more, more_inits = _affine(conv, out, s, b, tag)
        nodes += more
        inits += more_inits
    # Two depthwise convolutions sharing one bias, each with an affine.
    nodes.append(helper.make_node("Conv", ["y1", "w3", "shared_bias"], ["c3"], group=4,
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["y2", "w4", "shared_bias"], ["c4"], group=4,
                                  pads=[1, 1, 1, 1]))
    for conv, out, s, b, tag in (("c3", "y3", 0.5, 2.0, "3"), ("c4", "y4", -2.5, 0.1, "4")):
        more, more_inits = _affine(conv, out, s, b, tag)
        nodes += more
        inits += more_inits
    # A hard-swish, and one whose divisor is 6 per channel, not a scalar: left alone
    # (the recipe once crashed on such a divisor).
    more, more_inits = _hard_swish("y3", "out1", "a", [6.0])
    nodes += more
    inits += more_inits
    more, more_inits = _hard_swish("y4", "out2", "b", np.full((1, 4, 1, 1), 6.0))
    nodes += more
    inits += more_inits
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("out1", "out2")],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_the_rewrite_keeps_every_output_and_folds_only_what_it_may():
    model = _graph()
    x = RNG.normal(size=(1, 2, 8, 8)).astype(np.float32)
    before = _run(model, x)
    fused, counts = fuse(model)
    after = _run(fused, x)
    for a, b in zip(before, after, strict=True):
        assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
    # c1 and c2 folded (each gets a bias of its own); c3 and c4 share theirs: kept.
    assert counts == {"conv_affine_folded": 2, "hard_swish_fused": 1}
    assert [n.op_type for n in fused.graph.node].count("HardSwish") == 1
