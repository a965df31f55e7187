"""binwrn-export --qonnx (issue 31): each 1-bit conv weight enters its Conv through qonnx's
BipolarQuant with the layer's alpha, full-precision convs stay plain, qonnx's own cleanup,
inference and executor accept the graph and compute the NumPy runtime's logits; a partly
binary net keeps its fp32 layers; what the exporter does not cover is refused in one sentence
with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers_cli import call_entry as _call
from helpers_export import pixel_images, trained_looking_wrn, trained_looking_wrn18
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from onnx import numpy_helper
from test_export_cli import _one_error_line, _run_dir
from test_partly_binary import BINARY, _iterative_run_dir, _partly_binary

from binwrn import cli
from binwrn.data import load_splits
from binwrn.errors import ConfigError
from binwrn.export.format import decode, encode, read_packed
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.pack import pack_wrn, torch_logits
from binwrn.export.qonnx_export import (
    QONNX_DOMAIN,
    check_executor_runtime,
    check_qonnx,
    cleaned,
    conv_weight_datatypes,
    qonnx_logits,
    read_qonnx,
    to_qonnx,
)

try:
    check_executor_runtime()
    EXECUTOR_REASON = None
except ConfigError as err:  # the GPU image's onnxruntime 1.30 (make test-compat)
    EXECUTOR_REASON = str(err)
pytestmark = pytest.mark.skipif(EXECUTOR_REASON is not None, reason=str(EXECUTOR_REASON))


def test_an_older_onnxruntime_gets_one_sentence() -> None:
    check_executor_runtime("1.32.0")
    with pytest.raises(ConfigError, match="needs onnxruntime 1.32 or newer .* has 1.30.0"):
        check_executor_runtime("1.30.0")

CONF = Path(__file__).resolve().parents[1] / "conf"
STANDARD = {"BatchNormalization", "Relu", "Conv", "AveragePool", "Pad", "Add", "Max", "Div",
            "MaxPool", "GlobalAveragePool", "Flatten"}
DATA = {"dataset": "digits", "num_classes": 10, "image_size": 32, "test_limit": None}


def _packed(model, kwargs, data=DATA):
    return decode(encode(pack_wrn(model, kwargs, {**data, "num_classes":
                                                  kwargs["num_classes"]}))[0], "test")


def _close(expected: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


def _nets():
    partly, kwargs = _partly_binary()
    return {
        "wrn": trained_looking_wrn(seed=1),
        "first_last_fp32": trained_looking_wrn(seed=2, first_last_fp32=True),
        "shifted_relu": trained_looking_wrn(seed=3, norm="shifted_relu", temperature=40.0,
                                            input_relu=False),
        "partly_binary": (partly, kwargs),
        "resnet18_wide": trained_looking_wrn18(seed=4),
    }


@pytest.mark.parametrize("net", ["wrn", "first_last_fp32", "shifted_relu", "partly_binary",
                                 "resnet18_wide"])
def test_each_binary_weight_enters_its_conv_through_bipolar_quant_with_alpha(net):
    model, kwargs = _nets()[net]
    packed = _packed(model, kwargs)
    size = 64 if net == "resnet18_wide" else 32
    graph = to_qonnx(packed, (size, size))
    nodes = {n.name: n for n in graph.graph.node}
    init = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    producer = {o: n for n in graph.graph.node for o in n.output}
    convs = [layer for layer in packed.header["layers"] if layer["type"] == "conv2d"]
    for layer in convs:
        weight = nodes[layer["name"]].input[1]
        if layer["bits"] == 1:
            quant = producer[weight]
            assert (quant.op_type, quant.domain) == ("BipolarQuant", QONNX_DOMAIN)
            signs, scale = init[quant.input[0]], init[quant.input[1]]
            assert np.array_equal(signs, packed.tensors[layer["weight"]].astype(np.float32))
            assert set(np.unique(signs)) <= {-1.0, 1.0}
            assert scale.shape == () and scale == np.float32(layer["alpha"])  # per tensor
            assert len(quant.input) == 2  # no zero point
        else:
            assert weight not in producer  # a plain float initializer
            assert np.array_equal(init[weight], packed.tensors[layer["weight"]])
    assert {n.op_type for n in graph.graph.node} - {"BipolarQuant"} <= STANDARD
    binary = [layer["bits"] == 1 for layer in convs]
    assert sum(n.op_type == "BipolarQuant" for n in graph.graph.node) == sum(binary)
    if net == "partly_binary":
        assert {c["name"] for c, b in zip(convs, binary, strict=True) if b} == BINARY
        assert 0 < sum(binary) < len(convs)

    # qonnx: cleanup, shape and datatype inference, BIPOLAR for exactly the binary weights.
    wrapper = cleaned(graph)
    assert wrapper.check_all_tensor_shapes_specified()
    assert conv_weight_datatypes(wrapper) == ["BIPOLAR" if b else None for b in binary]
    # qonnx's executor computes the NumPy runtime's logits (and the trained model's).
    images = pixel_images(3, seed=5, size=size)
    checked = check_qonnx(graph, packed, images)
    assert checked.binary_weights == sum(binary)
    _close(NumpyWRN(packed).logits(images), checked.logits)
    _close(torch_logits(model, images), checked.logits)


def test_the_datatype_check_fails_for_a_weight_without_its_bipolar_annotation():
    """The check can fail: the same graph with one sign tensor's annotation removed."""
    packed = _packed(*trained_looking_wrn(seed=1))
    graph = to_qonnx(packed, (32, 32))
    del graph.graph.quantization_annotation[0]
    with pytest.raises(Exception, match="qonnx reports the conv weight datatypes"):
        check_qonnx(graph, packed, pixel_images(2))


def _qonnx_ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_partly_binary_checkpoint_exports_qonnx_and_qonnx_eval_equals_the_trained_net(
        tmp_path, monkeypatch, capsys):
    model, _ = _partly_binary()
    ckpt = _iterative_run_dir(tmp_path / "run", model)
    code, stdout, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn",
                              "--qonnx", "--check-images", 30)
    assert code == 0, err
    qonnx_file = tmp_path / "m.qonnx.onnx"
    assert f"wrote {qonnx_file}" in " ".join(stdout.split())
    assert "2 BipolarQuant weights" in stdout and "qonnx_vs_numpy max |diff|" in stdout
    assert _qonnx_ops(qonnx_file)["BipolarQuant"] == 2 and _qonnx_ops(qonnx_file)["Conv"] == 8
    report = (tmp_path / "m.size_report.md").read_text()
    assert f"| QONNX (BipolarQuant(+/-1 float32 signs, alpha) per 1-bit conv) | " \
           f"{qonnx_file.stat().st_size:,} |" in report
    code, _, err = _call(cli.evaluate, monkeypatch, capsys, qonnx_file, "--runtime", "qonnx",
                         "--json", tmp_path / "q.json")
    assert code == 0, err
    result = json.loads((tmp_path / "q.json").read_text())
    _, test = load_splits("digits", None, 10, test_limit=200)
    trained = torch_logits(model, test.model_inputs()).argmax(axis=1)
    assert (result["runtime"], result["images"]) == ("qonnx", 200)
    assert result["acc"] == pytest.approx(np.mean(trained == test.labels), abs=1e-9)
    qonnx = read_qonnx(qonnx_file)
    assert qonnx.header["data"]["dataset"] == "digits"
    _close(NumpyWRN(read_packed(tmp_path / "m.bwn")).logits(test.model_inputs()[:40]),
           qonnx_logits(cleaned(qonnx.model), test.model_inputs()[:40]))


def test_bare_qonnx_without_out_writes_beside_nothing_but_itself(tmp_path, monkeypatch, capsys):
    ckpt = _run_dir(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "--qonnx", "--check-images", 10)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "final.qonnx.onnx", "final.size_report.md", "run"]
    assert _qonnx_ops(tmp_path / "final.qonnx.onnx")["BipolarQuant"] == 8


def _paper3_run_dir(root: Path) -> Path:
    from binwrn.configuration.build import build_model

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["dataset=digits", "model=vgg"])
    (root / "checkpoints").mkdir(parents=True)
    state = {f"model.{k}": v for k, v in build_model(cfg).state_dict().items()}
    torch.save({"state_dict": state}, root / "checkpoints" / "final.ckpt")
    (root / ".hydra").mkdir()
    (root / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return root / "checkpoints" / "final.ckpt"


@pytest.mark.parametrize(("case", "sentence"), [
    ("full precision", "Nothing to pack: model.bits=32 has no 1-bit weights"),
    ("paper 3 net", "packs model=wrn and model=resnet18_wide only"),
])
def test_what_the_exporter_does_not_cover_is_refused_in_one_sentence(case, sentence, tmp_path,
                                                                     monkeypatch, capsys):
    ckpt = (_run_dir(tmp_path / "run", bits=32) if case == "full precision"
            else _paper3_run_dir(tmp_path / "run"))
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn",
                         "--qonnx", tmp_path / "m.qonnx.onnx")
    assert code == 2
    assert sentence in _one_error_line(err, "binwrn-export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written


@pytest.mark.parametrize("content", [b"not onnx at all", None])
def test_eval_of_a_file_that_is_not_our_qonnx_gets_one_sentence(content, tmp_path, monkeypatch,
                                                                capsys):
    path = tmp_path / "x.onnx"
    if content is None:  # a valid ONNX file, but not one binwrn-export --qonnx wrote
        graph = onnx.helper.make_graph([], "g", [], [])
        onnx.save(onnx.helper.make_model(graph), str(path))
    else:
        path.write_bytes(content)
    code, _, err = _call(cli.evaluate, monkeypatch, capsys, path, "--runtime", "qonnx")
    assert code == 2
    assert "is not a QONNX file written by binwrn-export --qonnx" in _one_error_line(
        err, "binwrn-eval")
