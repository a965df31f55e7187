"""A run killed with SIGKILL mid-training and started again with the same command continues
into the same MLflow run and ends exactly where an uninterrupted run ends (CPU, deterministic)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from e2e import BINWRN_RUN, binwrn_run
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

SETTINGS = ("experiment=smoke", "dataset=digits", "data.train_limit=600",
            "trainer.max_epochs=4", "deterministic=true", "seed=3",
            "tracking.system_metrics_interval=0")
METRICS = ("train/loss", "train/acc", "test/acc", "test/loss", "lr")


def _history(store: Path) -> tuple[str, dict[str, list[tuple[int, float]]], str]:
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("binwrn").experiment_id])
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
               for k in METRICS}
    return run.info.status, history, run.info.run_id


def _kill_after_second_epoch(tmp: Path) -> None:
    """Start the run and SIGKILL it once epoch 2's checkpoint exists (during epoch 3)."""
    args = [str(BINWRN_RUN), *SETTINGS, f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
            f"data.cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'first'}"]
    proc = subprocess.Popen(args, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp / "first" / "checkpoints" / "cycle-end-epoch0002.ckpt"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.2)  # into epoch 3 (12 steps of ~50 ms)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_then_same_command_resumes_into_the_same_run(tmp_path: Path) -> None:
    (tmp_path / "killed").mkdir()
    (tmp_path / "whole").mkdir()
    _kill_after_second_epoch(tmp_path / "killed")
    status, partial, run_id = _history(tmp_path / "killed" / "mlflow.db")
    assert status == "RUNNING"  # what a SIGKILL leaves behind
    assert [s for s, _ in partial["train/loss"]] == [1, 2]
    last = tmp_path / "killed" / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # 0-based: epoch 2 completed

    resumed = binwrn_run(tmp_path / "killed", *SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status, history, resumed_id = _history(tmp_path / "killed" / "mlflow.db")
    assert (status, resumed_id) == ("FINISHED", run_id)
    for key in ("train/loss", "lr"):
        assert [s for s, _ in history[key]] == [1, 2, 3, 4]  # none repeated, none missing

    whole = binwrn_run(tmp_path / "whole", *SETTINGS)
    assert whole.returncode == 0, whole.stderr[-3000:]
    _, uninterrupted, _ = _history(tmp_path / "whole" / "mlflow.db")
    assert history == uninterrupted
    kept = sorted(p.name for p in last.parent.glob("*.ckpt"))
    assert kept == ["cycle-end-epoch0002.ckpt", "final.ckpt", "last.ckpt"]
