"""ONNX models as workloads (the onnx extra): a small model written here with onnx.helper, read back layer by
layer, costed from the command line; bad files give one error line."""

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.errors import HardwareModelError
from lean.hw import workload as wl

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'lean[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(path, conv_attrs=None, zero_share=0.5):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w1.reshape(-1)[: int(zero_share * w1.size)] = 0.0
    w2 = rng.standard_normal((10, 64)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1",
                         **(conv_attrs or {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]})),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flat"),
        helper.make_node("Gemm", ["f1", "w2"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])],
                              initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_an_onnx_model_becomes_its_layers(tmp_path):
    workload = wl.load(str(_model(tmp_path / "tiny.onnx")))
    assert workload.name == "tiny"
    assert [(x.name, x.kind) for x in workload.layers] == [("conv1", "conv"), ("pool1", "pool"), ("fc", "fc")]
    conv, pool, fc = workload.layers
    assert (conv.n, conv.c, conv.k, conv.h, conv.w, conv.r, conv.s, conv.padding) == (2, 3, 4, 8, 8, 3, 3, 1)
    assert conv.macs == 2 * 4 * 8 * 8 * 3 * 3 * 3
    assert conv.w_density == pytest.approx(1 - 54 / 108)        # the real zeros of its weights
    assert (pool.h, pool.p, pool.stride) == (8, 4, 2)
    assert (fc.n, fc.c, fc.k) == (2, 64, 10) and fc.macs == 2 * 64 * 10
    assert wl.load(str(tmp_path / "tiny.onnx"), batch=5).layers[0].n == 5


def test_lean_hw_predict_costs_an_onnx_model(tmp_path):
    path = _model(tmp_path / "tiny.onnx")
    r = CliRunner().invoke(main, ["hw", "predict", "--workload", str(path), "--accel", "eyeriss", "--json"])
    assert r.exit_code == 0, r.output
    assert '"workload": "tiny"' in r.output


@pytest.mark.parametrize("attrs,message", [
    ({"pads": [1, 0, 1, 0], "kernel_shape": [3, 3]}, "pads .* are not the same on every side"),
    ({"pads": [1, 1, 1, 1], "kernel_shape": [3, 3], "dilations": [2, 2]}, "dilated convolutions"),
])
def test_what_a_layer_shape_cannot_hold_is_refused(tmp_path, attrs, message):
    with pytest.raises(HardwareModelError, match=message):
        wl.load(str(_model(tmp_path / "bad.onnx", conv_attrs=attrs)))


def test_a_damaged_onnx_file_is_one_error_line(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf at all")
    r = CliRunner().invoke(main, ["hw", "predict", "--workload", str(tmp_path / "broken.onnx"), "--accel", "eyeriss"])
    assert r.exit_code != 0 and "is not a readable ONNX model" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["hw", "predict", "--workload", str(tmp_path / "missing.onnx"), "--accel", "eyeriss"])
    assert r.exit_code != 0 and "does not exist" in r.output


def test_onnx_layers_lean_cannot_hold_are_refused_and_gemm_transposes_are_read(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv1d")], "c1d",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 14])], initializer=[w])
    onnx.save(helper.make_model(graph), str(tmp_path / "c1d.onnx"))
    with pytest.raises(HardwareModelError, match="only 2-D maps"):
        wl.load(str(tmp_path / "c1d.onnx"))
    # Gemm with transA: A arrives as (features, rows)
    b = numpy_helper.from_array(np.ones((5, 7), np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"], name="fc", transA=1)], "g",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [5, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 7])], initializer=[b])
    onnx.save(helper.make_model(graph), str(tmp_path / "g.onnx"))
    fc = wl.load(str(tmp_path / "g.onnx")).layers[0]
    assert (fc.n, fc.c, fc.k) == (2, 5, 7)
    # a conv whose weights come out of another node
    graph = helper.make_graph([helper.make_node("Identity", ["w0"], ["w"], name="id"),
                               helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "q",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                               helper.make_tensor_value_info("w0", TensorProto.FLOAT, [4, 3, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])])
    onnx.save(helper.make_model(graph), str(tmp_path / "q.onnx"))
    with pytest.raises(HardwareModelError, match="weights are computed in the graph"):
        wl.load(str(tmp_path / "q.onnx"))
