"""binwrn-export and binwrn-eval as entry functions (in-process, so fast): a checkpoint in a
Hydra output directory is packed, checked and evaluated; bad input gets one sentence on
stderr and exit status 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_cli import call_entry as _call
from helpers_export import trained_looking_wrn
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from binwrn import cli
from binwrn.data import load_splits
from binwrn.export.format import read_packed
from binwrn.export.numpy_runtime import NumpyWRN

CONF = Path(__file__).resolve().parents[1] / "conf"


def _run_dir(root: Path, bits: int = 1, hydra: bool = True) -> Path:
    """What binwrn-run leaves in its output directory: .hydra/config.yaml and the final
    checkpoint (Lightning's, keys prefixed `model.`)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["experiment=smoke", "dataset=digits", f"model.bits={bits}"])
    model, _ = trained_looking_wrn(seed=7, bits=bits)
    (root / "checkpoints").mkdir(parents=True)
    ckpt = root / "checkpoints" / "final.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    config = root / (".hydra/config.yaml" if hydra else "resolved.yaml")
    config.parent.mkdir(exist_ok=True)
    config.write_text(OmegaConf.to_yaml(cfg))
    return ckpt


def _one_error_line(err: str, prog: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def test_export_checkpoint_then_evaluate_it(tmp_path, monkeypatch, capsys):
    ckpt = _run_dir(tmp_path / "run")
    out = tmp_path / "m.bwn"
    code, stdout, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", out,
                              "--check-images", 20)
    assert code == 0, err
    assert "74,800" in stdout and "9,350" in stdout and "packed max |diff| 0" in stdout
    report = (tmp_path / "m.size_report.md").read_text()
    assert "| **total** | | 74,800 | | 9,350 | 299,200 |" in report
    assert f"| whole .bwn file | {out.stat().st_size:,} |" in report
    header = read_packed(out).header
    assert header["data"]["dataset"] == "digits" and header["data"]["test_limit"] == 200

    code, stdout, err = _call(cli.evaluate, monkeypatch, capsys, out, "--runtime", "numpy",
                              "--json", tmp_path / "r.json")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 200 and result["dataset"] == "digits"
    _, test = load_splits("digits", None, 10, test_limit=200)
    predicted = NumpyWRN(read_packed(out)).logits(test.model_inputs()).argmax(axis=1)
    assert result["acc"] == pytest.approx(np.mean(predicted == test.labels))
    assert "test/acc" in stdout


def test_checkpoint_with_config_option_and_overrides(tmp_path, monkeypatch, capsys):
    ckpt = _run_dir(tmp_path / "run", hydra=False)
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn")
    assert "--config" in _one_error_line(err, "binwrn-export") and code == 2
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "data.test_limit=30",
                         "--config", tmp_path / "run" / "resolved.yaml",
                         "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    assert (tmp_path / "m.onnx").stat().st_size > 4 * 74_800
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "data.nonsense=1",
                         "--config", tmp_path / "run" / "resolved.yaml", "--out", "x.bwn")
    assert "data.nonsense=1" in _one_error_line(err, "binwrn-export") and code == 2


def test_full_precision_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    ckpt = _run_dir(tmp_path / "run", bits=32)
    code, _, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn")
    assert code == 2
    assert "Nothing to pack: model.bits=32" in _one_error_line(err, "binwrn-export")
    assert not (tmp_path / "m.bwn").exists()


@pytest.mark.parametrize(("argv", "named"), [
    (["not-a-run-or-file", "--out", "m.bwn"], "neither a checkpoint file nor an MLflow run id"),
    (["0123456789abcdef0123456789abcdef", "--out", "m.bwn", "--tracking-uri",
      "sqlite:////nonexistent/mlflow.db"], "No tracking store"),
])
def test_bad_sources_get_one_sentence(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.chdir(tmp_path)
    code, _, err = _call(cli.export, monkeypatch, capsys, *argv)
    assert code == 2 and named in _one_error_line(err, "binwrn-export")


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "not-bwn"])
def test_damaged_file_is_refused_by_eval(tmp_path, monkeypatch, capsys, damage):
    ckpt = _run_dir(tmp_path / "run")
    good = tmp_path / "m.bwn"
    assert _call(cli.export, monkeypatch, capsys, ckpt, "--out", good,
                 "--check-images", 10)[0] == 0
    blob = bytearray(good.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 2] ^= 1
    elif damage == "version":
        blob[8] = 9
    else:
        blob = bytearray(ckpt.read_bytes())
    bad = tmp_path / "bad.bwn"
    bad.write_bytes(bytes(blob))
    code, out, err = _call(cli.evaluate, monkeypatch, capsys, bad)
    line = _one_error_line(err, "binwrn-eval")
    assert code == 2 and "test/acc" not in out
    assert {"truncate": "truncated", "flip": "corrupted", "version": "version 9",
            "not-bwn": "not a binwrn packed model"}[damage] in line


def test_eval_refuses_a_data_set_with_other_classes(tmp_path, monkeypatch, capsys):
    ckpt = _run_dir(tmp_path / "run")
    out = tmp_path / "m.bwn"
    assert _call(cli.export, monkeypatch, capsys, ckpt, "--out", out,
                 "--check-images", 10)[0] == 0
    code, _, err = _call(cli.evaluate, monkeypatch, capsys, out, "dataset=cifar100")
    assert code == 2 and "10 classes" in _one_error_line(err, "binwrn-eval")


def test_size_only_reports_wrn20_10_without_training(monkeypatch, capsys):
    code, out, err = _call(cli.export, monkeypatch, capsys, "--size-only", "--markdown",
                           "model.depth=20", "model.width=10", "dataset=cifar10")
    assert code == 0, err
    assert "| **total** | | 26,737,120 | | 3,342,140 | 106,948,480 |" in out
    assert "| 1-bit weights (sign bits) | 3,342,140 |" in out
    assert "| float32 side-car (BN moments, affine, fp32 convs) | 55,168 |" in out
