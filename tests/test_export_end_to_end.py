"""Train, export, evaluate, as a user would (subprocesses): the packed file's accuracy is the
run's recorded final test accuracy (test_final/acc), in PyTorch, NumPy and ONNX alike and in
qonnx's executor on the QONNX file (issue 31), and the export is logged on the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from e2e import binwrn_run
from mlflow import MlflowClient

from binwrn.data import load_splits
from binwrn.export.format import read_packed
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.onnx_export import onnx_logits
from binwrn.export.qonnx_export import cleaned, conv_weight_datatypes, qonnx_logits, read_qonnx

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _tool(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


def test_trained_run_exported_by_id_keeps_its_accuracy(tmp_path: Path) -> None:
    trained = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits")
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run,) = trained.runs()
    recorded = run.data.metrics["test_final/acc"]

    # By run id, from the folder holding mlflow.db: the default store.
    exported = _tool("binwrn-export", tmp_path, run.info.run_id, "--out", "wrn.bwn",
                     "--onnx", "wrn.onnx", "--qonnx")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "packed max |diff| 0" in exported.stdout and "74,800" in exported.stdout
    assert "8 BipolarQuant weights, qonnx datatype BIPOLAR" in " ".join(exported.stdout.split())

    evaluated = _tool("binwrn-eval", tmp_path, "wrn.bwn", "--json", "eval.json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 200  # the smoke experiment's test_limit, kept in the file
    assert result["acc"] == pytest.approx(recorded, abs=1e-6)
    assert result["equals_recorded"] is True and "(equal)" in evaluated.stdout

    _, test = load_splits("digits", None, 10, test_limit=200)
    images = test.model_inputs()
    numpy_acc = np.mean(NumpyWRN(read_packed(tmp_path / "wrn.bwn")).logits(images)
                        .argmax(axis=1) == test.labels)
    onnx_acc = np.mean(onnx_logits((tmp_path / "wrn.onnx").read_bytes(), images)
                       .argmax(axis=1) == test.labels)
    assert numpy_acc == result["acc"] and onnx_acc == result["acc"]

    # qonnx's executor on the QONNX file: the run's accuracy, the NumPy runtime's logits.
    qonnx_eval = _tool("binwrn-eval", tmp_path, "wrn.qonnx.onnx", "--runtime", "qonnx",
                       "--json", "qonnx.json")
    assert qonnx_eval.returncode == 0, qonnx_eval.stderr[-3000:]
    qonnx_result = json.loads((tmp_path / "qonnx.json").read_text())
    assert (qonnx_result["runtime"], qonnx_result["images"]) == ("qonnx", 200)
    assert qonnx_result["acc"] == result["acc"] == pytest.approx(recorded, abs=1e-6)
    assert qonnx_result["equals_recorded"] is True
    wrapper = cleaned(read_qonnx(tmp_path / "wrn.qonnx.onnx").model)
    assert conv_weight_datatypes(wrapper) == ["BIPOLAR"] * 8
    expected = NumpyWRN(read_packed(tmp_path / "wrn.bwn")).logits(images)
    got = qonnx_logits(wrapper, images)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())

    client = MlflowClient(f"sqlite:///{trained.store}")
    after = client.get_run(run.info.run_id)
    tags = after.data.tags  # run constants are tags, so no one-point charts push the curves
    assert tags["model/packed_bytes"] == "9350" and tags["model/fp32_bytes"] == "299200"
    assert tags["model/compression"] == "32"
    assert tags["export/file_bytes"] == str((tmp_path / "wrn.bwn").stat().st_size)
    assert not [k for k in after.data.metrics if k.startswith(("model/", "export/"))]
    names = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "export")}
    assert names == {"size_report.md", "wrn.bwn", "wrn.onnx", "wrn.qonnx.onnx"}
    qonnx_bytes = (tmp_path / "wrn.qonnx.onnx").stat().st_size
    assert tags["export/qonnx_file_bytes"] == str(qonnx_bytes)
    assert f"| {qonnx_bytes:,} |" in (tmp_path / "wrn.size_report.md").read_text()
    stored = client.download_artifacts(run.info.run_id, "export/wrn.bwn", str(tmp_path / "dl"))
    assert Path(stored).read_bytes() == (tmp_path / "wrn.bwn").read_bytes()
