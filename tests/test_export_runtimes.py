"""The two readers of a packed file besides PyTorch: the NumPy reference runtime (which must
not import torch) and the ONNX graph in onnxruntime; both give the PyTorch eval logits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers_export import assert_same_logits as _close
from helpers_export import pixel_images, trained_looking_wrn

from binwrn.errors import DataError
from binwrn.export.format import decode, encode, write_packed
from binwrn.export.graph import wrn_ops
from binwrn.export.numpy_runtime import NumpyWRN, conv2d, downsample
from binwrn.export.onnx_export import onnx_logits, to_onnx
from binwrn.export.pack import pack_wrn, torch_logits

SHIFTED_RELU = {"norm": "shifted_relu", "temperature": 40.0, "input_relu": False}
VARIANTS = [{}, {"bn_affine": True, "first_last_fp32": True},
            {"depth": 14, "width": 2, "num_classes": 7, "input_relu": False}, SHIFTED_RELU,
            {**SHIFTED_RELU, "depth": 14, "width": 2, "num_classes": 7, "temperature": 25.0,
             "input_relu": True, "first_last_fp32": True}]


def _model_and_file(**variant):
    model, kwargs = trained_looking_wrn(seed=5, **variant)
    return model, decode(encode(pack_wrn(model, kwargs))[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_numpy_runtime_equals_pytorch(variant):
    model, packed = _model_and_file(**variant)
    images = pixel_images(5, seed=1)
    _close(torch_logits(model, images), NumpyWRN(packed).logits(images, batch_size=2))


def test_numpy_conv_and_shortcut_match_torch():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    for stride, padding in ((1, 1), (2, 1), (1, 0)):
        expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                            padding=padding).numpy()
        assert np.allclose(conv2d(x, w, stride, padding), expected, atol=1e-5)
    pooled = F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, count_include_pad=False).numpy()
    out = downsample(x, extra_channels=2)
    assert np.allclose(out[:, :3], pooled, atol=1e-6) and not out[:, 3:].any()


def test_numpy_runtime_imports_no_torch(tmp_path: Path):
    """Run in a fresh interpreter: the runtime loads the file and computes the logits with
    NumPy alone (torch and binwrn.models never imported)."""
    model, kwargs = trained_looking_wrn(seed=2)
    write_packed(tmp_path / "m.bwn", pack_wrn(model, kwargs))
    images = pixel_images(3, seed=4)
    np.save(tmp_path / "x.npy", images)
    code = (
        "import sys, numpy as np\n"
        "from binwrn.export.numpy_runtime import load\n"
        "np.save(sys.argv[3], load(sys.argv[1]).logits(np.load(sys.argv[2])))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', "
        "'onnxruntime', 'mlflow', 'lightning') or m.startswith('binwrn.models'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.bwn"),
                           str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    _close(torch_logits(model, images), np.load(tmp_path / "y.npy"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_equals_pytorch(variant):
    model, packed = _model_and_file(**variant)
    graph = to_onnx(packed)
    onnx.checker.check_model(graph, full_check=True)
    for n in (1, 4):  # the batch size is free
        images = pixel_images(n, seed=n)
        _close(torch_logits(model, images), onnx_logits(graph, images))


def test_onnx_weights_are_plus_minus_alpha():
    model, packed = _model_and_file()
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in to_onnx(packed).graph.initializer}
    for name, conv in model.conv_layers():
        w = weights[f"{name}.weight"]
        assert np.unique(np.abs(w)).tolist() == [np.float32(conv.alpha)], name
        assert np.array_equal(w > 0, conv.weight.detach().numpy() >= 0), name
    kinds = {node.op_type for node in to_onnx(packed).graph.node}
    assert kinds == {"BatchNormalization", "Relu", "Conv", "Add", "AveragePool", "Pad",
                     "GlobalAveragePool", "Flatten"}


def test_unknown_topology_is_refused():
    _, packed = _model_and_file()
    packed.header["topology"] = "something-else"
    with pytest.raises(DataError, match="topology"):
        wrn_ops(packed.header)


def test_shifted_relu_graph_has_no_bn_but_the_inputs_and_divides_by_t():
    model, packed = _model_and_file(**SHIFTED_RELU)
    assert packed.header["topology"] == "mcdonnell2019-wrn-shifted-relu"
    ops = wrn_ops(packed.header)
    assert [op.layer["name"] for op in ops if op.kind == "batchnorm"] == ["input_bn"]
    assert [op.kind for op in ops[:2]] == ["batchnorm", "conv2d"]  # no input ReLU (spec 2.2)
    assert [op.kind for op in ops[-4:]] == ["shifted_relu", "conv2d", "divide",
                                            "global_avg_pool"]
    assert ops[-2].divisor == 40.0 and ops[-1].output == "logits"
    graph = to_onnx(packed)
    assert {node.op_type for node in graph.graph.node} == {
        "BatchNormalization", "Max", "Conv", "Add", "AveragePool", "Pad", "Div",
        "GlobalAveragePool", "Flatten"}
    packed.header["model"]["temperature"] = 80.0  # the divisor is read from the header
    images = pixel_images(3, seed=2)
    _close(torch_logits(model, images) / 2, NumpyWRN(packed).logits(images))
