"""`binwrn-run trainer=ddp` with two gloo processes on the CPU, as a user runs it: in one Hydra
multirun with the same config on one process (one MLflow run and one output folder per job,
every epoch's metrics logged once, every test image counted once, the same config hash and
accuracy of the same scale as the one-process run); in a joblib sweep, whose workers have no
command line of their job; and with rank 1 killed mid-training."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from e2e import BINWRN_RUN, binwrn_run
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

TEST_IMAGES = 201  # odd: the two processes evaluate 101 and 100
EPOCHS = 3
SHRUNK = ["experiment=smoke", "dataset=digits", "model.bits=32", "data.cutout=0",
          "schedule=cosine", "data.train_limit=600", f"data.test_limit={TEST_IMAGES}",
          f"trainer.max_epochs={EPOCHS}", "trainer.accelerator=cpu"]


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_two_cpu_processes_train_one_run_like_one_process(tmp_path: Path,
                                                          fresh_store: Path) -> None:
    out = binwrn_run(tmp_path, "-m", "trainer=ddp,cpu", *SHRUNK)  # ddp: 2 devices
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    runs = out.runs()
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    (ddp,) = [r for r in runs if r.data.tags.get("binwrn.world_size") == "2"]
    (alone,) = [r for r in runs if r is not ddp]
    assert ddp.data.tags["binwrn.config_hash"] == alone.data.tags["binwrn.config_hash"]

    client = MlflowClient(f"sqlite:///{out.store}")
    epochs = list(range(1, EPOCHS + 1))
    for key in ("train/loss", "train/acc", "lr"):
        assert _steps(client, ddp.info.run_id, key) == epochs  # once per epoch, by rank zero
    assert _steps(client, ddp.info.run_id, "test/acc") == epochs  # one value per step
    assert _steps(client, ddp.info.run_id, "test_final/acc") == [EPOCHS]  # the final test
    together, one = ddp.data.metrics["test_final/acc"], alone.data.metrics["test_final/acc"]
    correct = together * TEST_IMAGES
    assert correct == pytest.approx(round(correct), abs=1e-3)  # a count over all 201 images
    assert together > 0.25 and one > 0.25  # chance is 0.1
    assert abs(together - one) < 0.25

    jobs = tmp_path / "out"
    assert sorted(p.name for p in jobs.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "outputs").exists()  # the other rank opened no Hydra folder
    ddp_dir = Path(ddp.data.tags["binwrn.output_dir"])
    assert {"last.ckpt", "final.ckpt"} <= {p.name for p in (ddp_dir / "checkpoints").iterdir()}
    for job in ("0", "1"):
        assert json.loads((jobs / job / "outcome.json").read_text())["status"] == "finished"


def test_a_joblib_sweep_whose_workers_have_no_command_line_of_their_job_trains_ddp_jobs(
        tmp_path: Path, fresh_store: Path) -> None:
    """Each job's rank zero runs in a loky worker, whose command line is the whole sweep's:
    it starts its other rank from the job's own overrides."""
    out = binwrn_run(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "trainer=ddp", "seed=0,1", "experiment=smoke", "dataset=digits",
                     "model.bits=32", "data.train_limit=200", "data.test_limit=51",
                     "trainer.max_epochs=1", "trainer.accelerator=cpu")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    runs = out.runs()
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert (run.data.tags["binwrn.world_size"], run.data.tags["binwrn.started_by"]) == (
            "2", "binwrn")
    for job in ("0", "1"):
        outcome = json.loads((tmp_path / "out" / job / "outcome.json").read_text())
        assert outcome["status"] == "finished"
    assert not (tmp_path / "outputs").exists()  # the other ranks opened no Hydra folder


def test_a_rank_that_dies_stops_rank_zero_with_the_reason(tmp_path: Path,
                                                         fresh_store: Path) -> None:
    """SIGKILL to rank 1 mid-training (what the out-of-memory killer does): rank zero stops
    within seconds, says which rank died, and the run is FAILED with that reason."""
    psutil = pytest.importorskip("psutil")
    store, run_dir, log = tmp_path / "mlflow.db", tmp_path / "out", tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        rank_zero = subprocess.Popen(
            [str(BINWRN_RUN), "trainer=ddp", *SHRUNK[:-2], "trainer.max_epochs=100",
             "trainer.accelerator=cpu", f"tracking.uri=sqlite:///{store}",
             f"tracking.artifact_root={tmp_path / 'artifacts'}",
             f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 600
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # an epoch is done
            assert rank_zero.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        (rank_one,) = psutil.Process(rank_zero.pid).children()
        rank_one.kill()
        rank_zero.wait(timeout=120)
    finally:
        rank_zero.kill()
    said = f"DDP rank 1 (process {rank_one.pid}) was killed by SIGKILL during training"
    assert rank_zero.returncode == 2 and said in log.read_text(), log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    (run,) = MlflowClient(f"sqlite:///{store}").search_runs(["1"])
    assert run.info.status == "FAILED" and said in run.data.tags["binwrn.failure_reason"]
