"""Crash semantics end to end (CPU, deterministic, real SIGKILLs; issue 15):

- one run killed with SIGKILL at each of five moments in turn (store creation, mid-epoch,
  checkpoint write, BN recompute, final test), the same command started again after each:
  one FINISHED run whose every metric equals an uninterrupted run's, no RUNNING ghost;
- a crafted last.ckpt (whose unpickling runs code) offered through the store's tags, with
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: nothing runs, the run is refused or marked FAILED, a
  new run trains;
- SIGTERM of binwrn-sweep: the parent and its unfinished job KILLED, one sentence.

The kills use the test hook BINWRN_TEST_KILL_AT (binwrn/kill_points.py).
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from e2e import binwrn_run
from mlflow import MlflowClient
from test_crash_semantics import crafted_checkpoint

from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash
from binwrn.tracking.run import DIGEST_TAG, FAILURE_TAG, TrackedRun

pytestmark = pytest.mark.slow

SETTINGS = ("experiment=smoke", "dataset=digits", "trainer.max_epochs=3",
            "deterministic=true", "seed=3", "tracking.system_metrics_interval=0")
# The five moments of the acceptance, in the order one run's life reaches them; mid_epoch:1
# first kills a run before its first checkpoint (a ghost), mid_epoch:2 one with a checkpoint.
KILLS = ("store", "mid_epoch:1", "mid_epoch:2", "checkpoint_write:1", "bn_recompute",
         "final_test")


def _runs(store: Path):
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("binwrn")
    return client, (client.search_runs([experiment.experiment_id],
                                       order_by=["attributes.start_time"])
                    if experiment else [])


def _history(client: MlflowClient, run) -> dict[str, list[tuple[int, float]]]:
    """Every metric's (step, value) history; time/* are wall-clock times, not results."""
    return {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
            for k in sorted(run.data.metrics) if not k.startswith("time/")}


def test_kill_at_five_moments_then_the_same_command_ends_as_an_uninterrupted_run(
        tmp_path: Path) -> None:
    work = tmp_path / "killed"
    work.mkdir()
    for attempt, moment in enumerate(KILLS):
        killed = binwrn_run(work, *SETTINGS, f"hydra.run.dir={work / f'attempt{attempt}'}",
                            env={"BINWRN_TEST_KILL_AT": moment})
        assert killed.returncode == -signal.SIGKILL, (moment, killed.stderr[-3000:])
        if moment == "store":  # killed before the new store was renamed into place
            assert not killed.store.exists() and list(work.glob(".mlflow.db.*.creating"))
    last = binwrn_run(work, *SETTINGS, f"hydra.run.dir={work / 'last'}")
    assert last.returncode == 0, last.stderr[-3000:]
    assert "Traceback" not in last.stderr

    client, (ghost, run) = _runs(last.store)
    assert (ghost.info.status, run.info.status) == ("KILLED", "FINISHED")
    assert "ended without recording an end" in ghost.data.tags[FAILURE_TAG]
    assert not [k for k in ghost.data.metrics if k.startswith(("train/", "test/"))]  # epoch 1
    folder = Path(run.data.tags["binwrn.output_dir"])
    assert folder == work / "attempt2"  # every later attempt resumed it there
    checkpoints = folder / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "cycle-end-epoch0002.ckpt", "final.ckpt", "last.ckpt"]  # no .partial left
    assert not list(work.glob(".mlflow.db.*.creating"))
    assert hashlib.sha256((checkpoints / "last.ckpt").read_bytes()).hexdigest() == \
        run.data.tags[DIGEST_TAG]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2

    (tmp_path / "whole").mkdir()
    whole = binwrn_run(tmp_path / "whole", *SETTINGS)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference_client, (reference,) = _runs(whole.store)
    history = _history(client, run)
    assert history == _history(reference_client, reference)
    assert [s for s, _ in history["train/loss"]] == [1, 2, 3]  # none repeated, none missing
    assert [s for s, _ in history["test/acc"]] == [1, 2, 3]  # each epoch's, running BN stats
    assert [s for s, _ in history["test_final/acc"]] == [3]  # the final one, BN recomputed


def test_a_run_stopped_by_sigterm_mid_epoch_resumes_that_epoch_exactly(
        tmp_path: Path) -> None:
    """SIGTERM halfway through epoch 2 (a scheduler's stop): the checkpoint holds the epoch's
    permutation, steps done and running train/* sums, so the rerun trains the same remaining
    batches with the same augmentation and logs what an uninterrupted run logs."""
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    cut = binwrn_run(stopped, *SETTINGS, env={"BINWRN_TEST_KILL_AT": "mid_epoch:2:TERM"})
    assert cut.returncode == 2 and "stopped by SIGTERM at epoch 2" in cut.stderr, \
        cut.stderr[-3000:]
    again = binwrn_run(stopped, *SETTINGS)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-3000:]
    (tmp_path / "whole").mkdir()
    whole = binwrn_run(tmp_path / "whole", *SETTINGS)
    assert whole.returncode == 0, whole.stderr[-3000:]
    client, (run,) = _runs(again.store)
    reference_client, (reference,) = _runs(whole.store)
    assert _history(client, run) == _history(reference_client, reference)


def test_a_run_on_a_scratch_folder_outside_the_start_folder_resumes_there(
        tmp_path: Path) -> None:
    """hydra.run.dir on another disk (absolute, outside the folder the command starts in):
    killed after its first checkpoint, the same command resumes it to the uninterrupted
    run's metrics (issue 27 item 1: it used to be refused and its work lost)."""
    start, scratch = tmp_path / "start", tmp_path / "scratch" / "run"
    start.mkdir()
    command = (*SETTINGS, f"hydra.run.dir={scratch}")
    killed = binwrn_run(start, *command, env={"BINWRN_TEST_KILL_AT": "mid_epoch:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    again = binwrn_run(start, *command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Not resuming" not in again.stderr and "Traceback" not in again.stderr
    client, runs = _runs(again.store)
    assert [r.info.status for r in runs] == ["FINISHED"]  # resumed, not started afresh
    assert runs[0].data.tags["binwrn.resumed_by"] == str(scratch)
    (tmp_path / "whole").mkdir()
    whole = binwrn_run(tmp_path / "whole", *SETTINGS)
    reference_client, (reference,) = _runs(whole.store)
    assert _history(client, runs[0]) == _history(reference_client, reference)


def _plant(store: Path, artifacts: Path, folder: Path, marker: Path) -> str:
    """A RUNNING run of SETTINGS' config whose output folder holds a crafted last.ckpt, as
    anyone who can write to the store could make; its id."""
    cfg = compose([*SETTINGS, "trainer.max_epochs=1"])
    digest = crafted_checkpoint(folder / "checkpoints" / "last.ckpt", marker)
    run = TrackedRun(f"sqlite:///{store}", "binwrn", str(artifacts), "planted",
                     {"binwrn.config_hash": config_hash(cfg), "binwrn.output_dir": str(folder),
                      DIGEST_TAG: digest}, {})
    run.__enter__()
    return run.run_id


def test_a_crafted_checkpoint_chosen_through_the_store_runs_nothing(tmp_path: Path) -> None:
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 makes torch.load unpickle anything wherever
    weights_only is not passed; the marker file proves that nothing ran."""
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "code-ran"
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    store, artifacts = work / "mlflow.db", work / "artifacts"
    args = (*SETTINGS, "trainer.max_epochs=1")

    outside = _plant(store, artifacts, tmp_path / "elsewhere", marker)
    first = binwrn_run(work, *args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"Not resuming run {outside}" in first.stderr and "is outside" in first.stderr

    inside = _plant(store, artifacts, work / "outputs" / "planted", marker)
    second = binwrn_run(work, *args, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Run {inside} is now marked FAILED" in second.stderr
    assert "weights_only=True" in second.stderr and "Traceback" not in second.stderr

    assert not marker.exists()
    client, runs = _runs(store)
    status = {r.info.run_id: r.info.status for r in runs}
    assert status[inside] == "FAILED" and status[outside] == "RUNNING"  # not ours: untouched
    assert "does not load with weights_only=True" in \
        client.get_run(inside).data.tags[FAILURE_TAG]
    assert sorted(status.values()) == ["FAILED", "FINISHED", "FINISHED", "RUNNING"]


SWEEP = """
name: long
overrides: [experiment=smoke, dataset=digits, trainer.max_epochs=30,
            tracking.system_metrics_interval=0]
blocks:
  - grid: {model.bits: [1, 32]}
report: {kind: generic, rows: [model.bits]}
"""


def test_sigterm_of_a_sweep_marks_the_parent_and_its_unfinished_jobs_killed(
        tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    sweep = _sweep(tmp_path, "long", SWEEP)
    deadline = time.monotonic() + 600
    while not list(tmp_path.glob("outputs/sweeps/long/*/jobs/0/checkpoints/last.ckpt")):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.2)
    sweep.send_signal(signal.SIGTERM)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 2, err[-3000:]
    assert "Stopped by SIGTERM" in err and "Traceback" not in err + out
    client, runs = _runs(store)
    parent = next(r for r in runs if r.data.tags.get("binwrn.sweep_role") == "parent")
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "KILLED"
    assert children and {r.info.status for r in children} == {"KILLED"}


THREE_JOBS = """
name: three
overrides: [experiment=smoke, dataset=digits, trainer.max_epochs=3, deterministic=true,
            tracking.system_metrics_interval=0]
blocks:
  - grid: {seed: [1, 2, 3]}
report: {kind: generic, rows: [seed]}
"""


def _sweep(folder: Path, name: str = "three", text: str = THREE_JOBS) -> subprocess.Popen:
    """`binwrn-sweep` of the sweep file `text` with its store, artifacts and cache in `folder`."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("binwrn-sweep")), str(folder / f"{name}.yaml"),
         "--no-report", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
         f"tracking.artifact_root={folder / 'artifacts'}", f"data.cache_dir={folder / 'c'}"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _histories_by_seed(store: Path) -> dict[str, dict]:
    client, runs = _runs(store)
    jobs = [r for r in runs if r.data.tags.get("binwrn.sweep_role") != "parent"]
    assert {r.info.status for r in jobs} == {"FINISHED"}, [r.info.status for r in jobs]
    return {r.data.params["seed"]: _history(client, r) for r in jobs}


def test_sigterm_during_job_2_starts_no_later_job_and_a_rerun_finishes_the_rest(
        tmp_path: Path) -> None:
    """Stop means stop (issue 27 item 6): jobs 3.. used to start after the signal, each
    leaving a checkpoint and a KILLED run."""
    stopped = _sweep(tmp_path / "stopped")
    jobs = tmp_path / "stopped" / "outputs" / "sweeps" / "three"
    deadline = time.monotonic() + 600
    while not list(jobs.glob("*/jobs/1/checkpoints/last.ckpt")):
        assert stopped.poll() is None and time.monotonic() < deadline, stopped.communicate()
        time.sleep(0.1)
    stopped.send_signal(signal.SIGTERM)
    out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 2 and "Stopped by SIGTERM" in err, err[-3000:]
    assert "Traceback" not in out + err
    assert not list(jobs.glob("*/jobs/2"))  # job 3 never started
    rerun = _sweep(tmp_path / "stopped")
    out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    whole = _sweep(tmp_path / "whole")
    out, err = whole.communicate(timeout=900)
    assert whole.returncode == 0, err[-3000:]
    resumed = _histories_by_seed(tmp_path / "stopped" / "mlflow.db")
    uninterrupted = _histories_by_seed(tmp_path / "whole" / "mlflow.db")
    # Job 2 was cut mid-epoch and resumes the rest of that epoch: every job is exact.
    assert resumed == uninterrupted
