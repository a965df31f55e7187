"""binwrn-sweep as a user runs it (a subprocess): parent and nested children in the store,
failures recorded while the other jobs finish, a second invocation skipping what finished,
and parallel jobs through Hydra's joblib launcher into one SQLite store."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

pytestmark = pytest.mark.slow

BINWRN_SWEEP = Path(sys.executable).with_name("binwrn-sweep")

TINY = """
name: tiny
overrides: [dataset=digits, model.depth=8, model.width=1, data.train_limit=100,
            data.test_limit=100, data.batch_size=50, trainer.max_epochs=1,
            tracking.system_metrics_interval=0]
blocks:
  - grid: {model.bits: [32, 1]}
  - overrides: [model.width=0]            # refused before any run exists
    grid: {model.bits: [1]}
  - overrides: [optim.lr=1.0e12, data.train_limit=300]   # diverges: a FAILED run
    grid: {model.bits: [32]}
report: {kind: generic, rows: [model.bits, model.width, optim.lr]}
"""


def _sweep(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    store = tmp / "mlflow.db"
    command = [str(BINWRN_SWEEP), str(tmp / "tiny.yaml"), *args,
               f"tracking.uri=sqlite:///{store}", f"tracking.artifact_root={tmp / 'artifacts'}",
               f"data.cache_dir={tmp / 'cache'}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp,
                          env={**os.environ, "COLUMNS": "200"})


def _runs(tmp: Path):
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("binwrn")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    parents = [r for r in runs if r.data.tags.get("binwrn.sweep_role") == "parent"]
    children = [r for r in runs if r not in parents]
    return client, parents, children


def test_sweep_nests_jobs_records_failures_skips_finished_and_forces(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    first = _sweep(tmp_path, "--no-report")
    assert first.returncode == 1, first.stderr[-3000:]
    client, (parent,), children = _runs(tmp_path)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["binwrn.failure_reason"] == "2 of 4 jobs failed"
    by_job = {r.data.tags["binwrn.sweep_job"]: r for r in children}
    assert set(by_job) == {"job_000", "job_001", "job_003"}  # job_002 never got a run
    for job, run in by_job.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["model.bits"] == ("1" if job == "job_001" else "32")
    assert by_job["job_000"].info.status == by_job["job_001"].info.status == "FINISHED"
    assert by_job["job_003"].info.status == "FAILED"
    assert "NaN" in by_job["job_003"].data.tags["binwrn.failure_reason"]

    jobs = json.loads(Path(client.download_artifacts(parent.info.run_id, "sweep/jobs.json",
                                                     str(tmp_path))).read_text())
    status = {j["job"]: j["status"] for j in jobs}
    assert status == {"job_000": "finished", "job_001": "finished", "job_002": "failed",
                      "job_003": "failed"}
    assert "model.width=0" in jobs[2]["reason"]
    assert jobs[0]["run_id"] == by_job["job_000"].info.run_id
    assert jobs[1]["labels"] == {"model.bits": 1}
    assert "2 finished, 0 skipped" in first.stdout and "Traceback" not in first.stderr

    # Again, through the submitit launcher (its local executor; SLURM on a cluster): what
    # finished is skipped across launchers, the failed jobs run again and fail again.
    second = _sweep(tmp_path, "--no-report", "--launcher", "submitit_local")
    assert second.returncode == 1
    assert "Submitit 'local'" in second.stdout + second.stderr
    assert "0 finished, 2 skipped" in second.stdout and "2 failed" in second.stdout
    _, parents, children_after = _runs(tmp_path)
    assert len(parents) == 2
    finished = [r for r in children_after if r.info.status == "FINISHED"]
    assert len(finished) == 2  # nothing that finished was trained again

    forced = _sweep(tmp_path, "--no-report", "--force")
    assert "2 finished, 0 skipped" in forced.stdout  # the finished jobs trained again
    _, parents, children_forced = _runs(tmp_path)
    assert len(parents) == 3
    assert len([r for r in children_forced if r.info.status == "FINISHED"]) == 4


def test_two_parallel_jobs_land_in_one_new_sqlite_store(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY.split("  - overrides: [model.width=0]")[0])
    out = _sweep(tmp_path, "--jobs", "2")  # and the closing report
    assert out.returncode == 0, out.stderr[-3000:]
    assert "database is locked" not in out.stdout + out.stderr
    launch = next((tmp_path / "outputs" / "sweeps" / "tiny").glob("*/launch_command.txt"))
    assert "hydra/launcher=joblib" in launch.read_text()
    _, (parent,), children = _runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.params["model.bits"] for r in children) == ["1", "32"]
    assert all(r.info.status == "FINISHED" for r in children)

    report = tmp_path / "reports" / "tiny"
    with (report / "report.csv").open() as f:
        rows = {row["model.bits"]: float(row["ours (%)"]) for row in csv.DictReader(f)}
    assert rows == {r.data.params["model.bits"]: pytest.approx(
        r.data.metrics["test_final/error_pct"], abs=0.01) for r in children}
    with Image.open(report / "error_vs_epoch.png") as png:
        assert png.format == "PNG" and png.size[0] > 300
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report.md", "report.csv", "error_vs_epoch.png"} <= logged

