"""Issue 16 end to end, as a user runs it (subprocesses for training and sweeps):

- the issue's reproduction (forward order, more epochs per layer than the run has) and a
  finished schedule, each trained, exported by run id and evaluated: the file scores the
  run's final test accuracy, and the sizes count only the binary layers;
- no metric history of a finished (and exported) run holds two values at one step;
- the convergence sweep's smoke version, reported by binwrn-report, sets the points measured
  with recomputed BN statistics beside the paper's curves;
- the precision sweep's smoke version trains fp32 and bf16 jobs on the CPU.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import binwrn_run
from helpers_cli import call_entry as _call
from mlflow import MlflowClient

from binwrn import cli
from binwrn.report import cli as report_cli

pytestmark = pytest.mark.slow
BINWRN_SWEEP = Path(sys.executable).with_name("binwrn-sweep")
TINY = ("experiment=smoke", "dataset=digits", "data.train_limit=100", "data.test_limit=100")


def _one_value_per_step(client: MlflowClient, run) -> None:
    for key in run.data.metrics:
        if key.startswith("system/"):
            continue
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)


def test_unfinished_and_finished_schedules_export_as_trained(tmp_path, monkeypatch, capsys):
    # E=9 with 8 epochs: only conv_in binary (the case); E=1: all 8 layers from epoch 8.
    done = binwrn_run(tmp_path, "-m", *TINY, "trainer.max_epochs=8", "iterative.order=forward",
                      "iterative.epochs_per_layer=9,1")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r.data.params["iterative.epochs_per_layer"]: r for r in done.runs()}
    uri = f"sqlite:///{done.store}"
    client = MlflowClient(uri)
    for epochs_per_layer, binary_weights in (("9", 432), ("1", 74_800)):
        run = runs[epochs_per_layer]
        assert run.data.tags["model/binary_weights"] == str(binary_weights)
        history = {key: [m.step for m in client.get_metric_history(run.info.run_id, key)]
                   for key in ("test/acc", "test_recomputed/acc", "test_final/acc")}
        assert history == {"test/acc": list(range(1, 9)),
                           "test_recomputed/acc": [2, 6, 8],  # SGDR cycle ends, then final
                           "test_final/acc": [8]}
        out = tmp_path / f"e{epochs_per_layer}.bwn"
        code, stdout, err = _call(cli.export, monkeypatch, capsys, run.info.run_id, "--out",
                                  out, "--tracking-uri", uri)
        assert code == 0, err
        assert "packed max |diff| 0" in stdout
        assert ("Partly binary: 7 of the 1-bit layers" in stdout) == (epochs_per_layer == "9")
        code, stdout, err = _call(cli.evaluate, monkeypatch, capsys, out, "--runtime",
                                  "numpy", "--json", out.with_suffix(".json"))
        assert code == 0, err
        result = json.loads(out.with_suffix(".json").read_text())
        assert result["images"] == 100
        assert result["acc"] == pytest.approx(run.data.metrics["test_final/acc"], abs=1e-6)
        assert result["equals_recorded"] is True
        _one_value_per_step(client, client.get_run(run.info.run_id))  # export logged too


def _sweep(tmp: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    store = tmp / "mlflow.db"
    command = [str(BINWRN_SWEEP), name, "--smoke", "--no-report", *extra,
               f"tracking.uri=sqlite:///{store}", f"tracking.artifact_root={tmp / 'artifacts'}",
               f"data.cache_dir={tmp / 'cache'}", "data.train_limit=100",
               "data.test_limit=100"]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=tmp,
                          env={**os.environ, "COLUMNS": "200"})


def test_convergence_smoke_reports_recomputed_points(tmp_path, monkeypatch, capsys):
    done = _sweep(tmp_path, "p1_convergence")
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    children = [r for r in client.search_runs([client.get_experiment_by_name("binwrn")
                                               .experiment_id])
                if r.data.tags.get("binwrn.sweep_role") != "parent"]
    assert len(children) == 4
    for run in children:
        _one_value_per_step(client, run)
        recomputed = {m.step: m.value for m in client.get_metric_history(
            run.info.run_id, "test_recomputed/error_pct")}
        assert sorted(recomputed) == [2, 6]  # the smoke's 6 epochs: cycle ends 2 and 6
        assert recomputed[6] == run.data.metrics["test_final/error_pct"]
    code, stdout, err = _call(report_cli.main, monkeypatch, capsys, "--sweep", "p1_convergence",
                              "--tracking-uri", uri, "--out", tmp_path / "report", "--no-log")
    assert code == 0, err
    with (tmp_path / "report" / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["epoch"] for r in rows} == {"2", "6"} and len(rows) == 8
    assert {r["BN statistics"] for r in rows} == {"recomputed"}
    by_run = {r.info.run_id: r for r in children}
    for row in rows:
        assert row["ours (%)"] != ""
    ours = sorted(round(float(r["ours (%)"]), 2) for r in rows)
    logged = sorted(round(m.value, 2) for run in by_run.values() for m in
                    client.get_metric_history(run.info.run_id, "test_recomputed/error_pct"))
    assert ours == logged


def test_precision_smoke_trains_fp32_and_bf16_on_the_cpu(tmp_path):
    done = _sweep(tmp_path, "p1_precision")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = [r for r in client.search_runs([client.get_experiment_by_name("binwrn")
                                               .experiment_id])
                if r.data.tags.get("binwrn.sweep_role") != "parent"]
    cells = sorted((r.data.params["trainer.precision"], r.data.params["model.bits"],
                    r.data.params["seed"]) for r in children)
    assert cells == sorted((p, b, s) for p in ("32-true", "bf16-mixed") for b in ("1", "32")
                           for s in ("0", "1"))
    assert all(r.info.status == "FINISHED" for r in children)
    assert all(0 <= r.data.metrics["test_final/error_pct"] <= 100 for r in children)
