"""Four runs started at once against one new SQLite store all land, complete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from e2e import BINWRN_RUN
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def test_four_simultaneous_runs_on_one_new_sqlite_store(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"  # does not exist yet: all four race to create it
    procs = [
        subprocess.Popen(
            [str(BINWRN_RUN), "experiment=smoke", "dataset=digits", f"seed={seed}",
             "trainer.max_epochs=1",
             "tracking.system_metrics_interval=1", f"tracking.uri=sqlite:///{store}",
             f"tracking.artifact_root={tmp_path / 'artifacts'}",
             f"hydra.run.dir={tmp_path / f'out{seed}'}", f"data.cache_dir={tmp_path / 'cache'}"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seed in range(4)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "database is locked" not in err and "Traceback" not in err
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("binwrn").experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert steps == [1]
        assert "test_final/acc" in run.data.metrics
