"""Write the two tiny GEMM graphs `appliance bench ocr` uses to measure the CPU's int8 ceiling.

Whether an int8 model can beat its fp32 twin depends first on the CPU: without
VNNI (AVX512-VNNI / AVX-VNNI) or ARM dot-product instructions, onnxruntime's
u8s8 GEMM runs at about the fp32 rate. Both graphs take every operand as an
input, so the files are a few hundred bytes and carry no weights.

    python -m models.recipe.gemm_probe
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).resolve().parents[2] / "appliance" / "ocr" / "probe"


def _io(name: str, dtype: int, shape: list[str | int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    f32 = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm_fp32",
        [_io("a", TensorProto.FLOAT, ["M", "K"]), _io("b", TensorProto.FLOAT, ["K", "N"])],
        [_io("y", TensorProto.FLOAT, ["M", "N"])],
    )
    scalars = [("a_scale", TensorProto.FLOAT), ("a_zero", TensorProto.UINT8),
               ("b_scale", TensorProto.FLOAT), ("b_zero", TensorProto.INT8),
               ("y_scale", TensorProto.FLOAT), ("y_zero", TensorProto.UINT8)]
    i8 = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zero", "b", "b_scale", "b_zero",
                                            "y_scale", "y_zero"], ["y"])], "gemm_int8",
        [_io("a", TensorProto.UINT8, ["M", "K"]), _io("b", TensorProto.INT8, ["K", "N"])]
        + [_io(n, t, []) for n, t in scalars],
        [_io("y", TensorProto.UINT8, ["M", "N"])],
    )
    for graph, name in ((f32, "gemm_fp32.onnx"), (i8, "gemm_int8.onnx")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(OUT / name))
        print(OUT / name, (OUT / name).stat().st_size)


if __name__ == "__main__":
    main()
