"""A net that paper 3's layer-by-layer schedule left partly binary (issue 16, item 1): which
layers are binary is part of its state (checkpoints), its sizes count only those, and the
export stores the others as fp32, so the file computes what was trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_cli import call_entry as _call
from helpers_export import pixel_images, trained_looking_wrn
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from binwrn import cli
from binwrn.data import load_splits
from binwrn.export.format import decode, encode, read_packed
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.pack import pack_wrn, rebuild_wrn, torch_logits
from binwrn.models import WideResNet, size_summary
from binwrn.models.layer_order import set_binary_layers

CONF = Path(__file__).resolve().parents[1] / "conf"
BINARY = {"conv_in", "blocks.0.conv1"}  # the first two of forward order: 2 of 8 layers


def _partly_binary(seed: int = 5) -> tuple[WideResNet, dict]:
    model, kwargs = trained_looking_wrn(seed=seed)
    set_binary_layers(model, BINARY)
    return model, kwargs


def test_the_binary_state_is_in_checkpoints_and_old_ones_load_all_binary() -> None:
    model, kwargs = _partly_binary()
    state = model.state_dict()
    assert state["conv_in.binary_active"].item() is True
    assert state["blocks.0.conv2.binary_active"].item() is False
    fresh = WideResNet(**kwargs)  # every layer binary until the file says otherwise
    fresh.load_state_dict(state)
    assert {name for name, conv in fresh.conv_layers() if conv.is_binary} == BINARY
    images = torch.from_numpy(pixel_images(4))
    assert torch.equal(fresh.eval()(images), model.eval()(images))
    # A checkpoint from before the key existed (paper 1's, all binary) still loads, strictly.
    old = {k: v for k, v in state.items() if not k.endswith("binary_active")}
    again = WideResNet(**kwargs)
    again.load_state_dict(old)
    assert all(conv.is_binary for _, conv in again.conv_layers())


def test_sizes_count_only_the_binary_layers() -> None:
    model, _ = _partly_binary()
    summary = size_summary(model)
    binary = {x.name: x.weights for x in summary.layers if x.bits == 1}
    assert set(binary) == BINARY
    assert summary.binary_weights == sum(binary.values()) == 3 * 16 * 9 + 16 * 16 * 9
    fp32 = summary.conv_weights - summary.binary_weights
    assert summary.packed_bytes == -(-summary.binary_weights // 8) + 4 * fp32
    assert len(summary.pending_layers) == 6
    assert "Partly binary: 6 of the 1-bit layers" in summary.as_markdown()
    assert "Partly binary" not in size_summary(WideResNet(depth=8, width=1)).as_markdown()


def test_a_partly_binary_net_packs_its_fp32_layers_as_fp32_and_computes_the_same() -> None:
    model, kwargs = _partly_binary()
    packed = decode(encode(pack_wrn(model, kwargs))[0])
    convs = [layer for layer in packed.header["layers"] if layer["type"] == "conv2d"]
    assert [c["bits"] for c in convs] == [1, 1, 32, 32, 32, 32, 32, 32]
    assert packed.tensors["blocks.0.conv2.weight"].dtype == np.float32
    assert np.array_equal(packed.tensors["blocks.0.conv2.weight"],
                          model.blocks[0].conv2.weight.detach().numpy())
    images = pixel_images(6)
    expected = torch_logits(model, images)
    all_binary = torch_logits(rebuild_wrn(decode(encode(pack_wrn(
        trained_looking_wrn(seed=5)[0], kwargs))[0])), images)
    assert np.abs(all_binary - expected).max() > 1e-2  # the check below can tell them apart
    assert np.array_equal(torch_logits(rebuild_wrn(packed), images), expected)
    numpy_logits = NumpyWRN(packed).logits(images)
    assert np.abs(numpy_logits - expected).max() <= 1e-4 * np.abs(expected).max()


def _iterative_run_dir(root: Path, model: WideResNet, drop_state: bool = False,
                       max_epochs: int = 1) -> Path:
    """binwrn-run's output folder for a forward schedule with E=5 (1 layer binary per 5
    epochs): config and final checkpoint, optionally without the binary state (as before
    binwrn stored it)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["experiment=smoke", "dataset=digits",
                                 "iterative.order=forward", "iterative.epochs_per_layer=5",
                                 f"trainer.max_epochs={max_epochs}"])
    state = {f"model.{k}": v for k, v in model.state_dict().items()
             if not (drop_state and k.endswith("binary_active"))}
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": state}, root / "checkpoints" / "final.ckpt")
    (root / ".hydra").mkdir()
    (root / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return root / "checkpoints" / "final.ckpt"


def test_export_and_eval_of_a_partly_binary_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    model, _ = _partly_binary()
    ckpt = _iterative_run_dir(tmp_path / "run", model)
    out = tmp_path / "m.bwn"
    code, stdout, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", out,
                              "--check-images", 50)
    assert code == 0, err
    assert "packed max |diff| 0" in stdout and "Partly binary" in stdout
    assert "Partly binary: 6 of the 1-bit layers" in out.with_name("m.size_report.md").read_text()
    code, _, err = _call(cli.evaluate, monkeypatch, capsys, out, "--json", tmp_path / "e.json")
    assert code == 0, err
    _, test = load_splits("digits", None, 10, test_limit=200)
    trained = torch_logits(model, test.model_inputs()).argmax(axis=1)
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["acc"] == pytest.approx(np.mean(trained == test.labels), abs=1e-9)
    assert read_packed(out).header["layers"][1]["bits"] == 1  # conv_in, after input_bn


def test_an_old_checkpoint_of_an_unfinished_schedule_is_refused(tmp_path, monkeypatch,
                                                                capsys) -> None:
    model, _ = _partly_binary()
    ckpt = _iterative_run_dir(tmp_path / "run", model, drop_state=True)
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "iterative.order=forward" in lines[0] and "train it again" in lines[0]
    assert not (tmp_path / "m.bwn").exists()
    # The same old checkpoint of a schedule that finished (8 layers x E=5 < 36 epochs) is
    # all binary, as it loads.
    finished = _iterative_run_dir(tmp_path / "done", trained_looking_wrn(seed=5)[0],
                                  drop_state=True, max_epochs=36)
    code, stdout, err = _call(cli.export, monkeypatch, capsys, finished, "--out",
                              tmp_path / "done.bwn", "--check-images", 20)
    assert code == 0, err
    assert "74,800" in stdout and "Partly binary" not in stdout
