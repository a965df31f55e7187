"""Two "nodes" of one gloo process each on this CPU machine, started as a cluster starts them:
two `torchrun --nnodes=2 --node-rank=0/1` agents, and two `binwrn-run` processes with the
variables srun sets (Lightning's SLURMEnvironment reads them; no `srun` needed). Each lands as
exactly one FINISHED MLflow run with the metrics of the same config on 2 processes of one
machine (binwrn's own workstation mode), and only rank zero writes. A SIGTERM to both ranks
mid-epoch, then a restart on another node count and launcher, continues the same run.
All processes run with one intra-op thread, so the arithmetic is the same in every layout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e import BINWRN_RUN, binwrn_run
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")
SHRUNK = ("experiment=smoke", "dataset=digits", "model.bits=32", "data.cutout=0",
          "schedule=cosine", "data.train_limit=600", "data.test_limit=201",
          "trainer.accelerator=cpu", "trainer=ddp")
TWO_NODES = ("trainer.num_nodes=2", "trainer.devices=1")
# Variables a test must not inherit: they would say who started this pytest.
_LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                     "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "TORCHELASTIC_RUN_ID")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _LAUNCH_VARIABLES and not k.startswith("SLURM_")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _storage(tmp: Path) -> list[str]:
    return [f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
            f"tracking.artifact_root={tmp / 'artifacts'}", f"data.cache_dir={tmp / 'cache'}",
            f"hydra.run.dir={tmp / 'out'}"]


def _slurm_ranks(tmp: Path, *overrides: str) -> list[subprocess.Popen]:
    """Two tasks on two nodes, as `srun --nodes=2 --ntasks-per-node=1 binwrn-run ...`."""
    port, procs = _free_port(), []
    for rank in (0, 1):
        env = _clean_env(SLURM_NTASKS="2", SLURM_PROCID=str(rank), SLURM_LOCALID="0",
                         SLURM_NODEID=str(rank), SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="1",
                         SLURM_JOB_ID="4242", SLURM_JOB_NAME="binwrn-test", SLURM_STEP_ID="0",
                         MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        log = (tmp / f"srun-rank{rank}.log").open("w")
        procs.append(subprocess.Popen([str(BINWRN_RUN), *overrides, *_storage(tmp)], cwd=tmp,
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _torchrun(tmp: Path, nodes: int, per_node: int, *overrides: str) -> list[subprocess.Popen]:
    """One `torchrun --nnodes=N --node-rank=R --nproc-per-node=G binwrn-run ...` per node."""
    port, procs = _free_port(), []
    for node in range(nodes):
        log = (tmp / f"torchrun-node{node}.log").open("w")
        procs.append(subprocess.Popen(
            [str(TORCHRUN), f"--nnodes={nodes}", f"--node-rank={node}",
             f"--nproc-per-node={per_node}", "--master-addr=127.0.0.1", f"--master-port={port}",
             str(BINWRN_RUN), *overrides, *_storage(tmp)],
            cwd=tmp, env=_clean_env(), stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait(procs: list[subprocess.Popen], tmp: Path, timeout: float = 900) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("the ranks did not finish: " + _logs(tmp))
    return codes


def _logs(tmp: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(tmp.glob("*.log")))


def _only_run(store: Path):
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("binwrn").experiment_id])
    history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(
        run.info.run_id, key), key=lambda m: (m.step, m.timestamp))]
        for key in run.data.metrics if not key.startswith("time/")}  # wall times differ
    return run, history


def _written_by_rank_zero_only(tmp: Path) -> None:
    assert sorted(p.name for p in tmp.iterdir() if p.is_dir()) == ["artifacts", "out"]
    assert {"last.ckpt", "final.ckpt"} <= {p.name for p in (tmp / "out" / "checkpoints").iterdir()}
    assert (tmp / "out" / ".hydra" / "config.yaml").is_file()
    assert not (tmp / ".hydra").exists() and not (tmp / "binwrn-run.log").exists()


def test_two_nodes_under_torchrun_and_srun_train_the_two_process_run(tmp_path: Path) -> None:
    one_machine, torchrun, srun = (tmp_path / name for name in ("one", "torchrun", "srun"))
    for folder in (one_machine, torchrun, srun):
        folder.mkdir()
    epochs = ("trainer.max_epochs=2",)
    base = binwrn_run(one_machine, *SHRUNK, *epochs, "trainer.devices=2",
                      env={"OMP_NUM_THREADS": "1"})
    assert base.returncode == 0, base.stderr[-3000:]
    reference, expected = _only_run(one_machine / "mlflow.db")
    assert reference.data.tags["binwrn.started_by"] == "binwrn"

    codes = _wait(_torchrun(torchrun, 2, 1, *SHRUNK, *epochs, *TWO_NODES), torchrun)
    assert codes == [0, 0], _logs(torchrun)
    codes = _wait(_slurm_ranks(srun, *SHRUNK, *epochs, *TWO_NODES), srun)
    assert codes == [0, 0], _logs(srun)

    for folder, launcher in ((torchrun, "torchrun"), (srun, "srun")):
        run, history = _only_run(folder / "mlflow.db")  # exactly one run
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        assert (tags["binwrn.started_by"], tags["binwrn.num_nodes"],
                tags["binwrn.world_size"]) == (launcher, "2", "2")
        assert tags["binwrn.config_hash"] == reference.data.tags["binwrn.config_hash"]
        assert history.keys() == expected.keys()
        for key, values in expected.items():  # every epoch's and the final values
            assert [step for step, _ in history[key]] == [step for step, _ in values], key
            assert [v for _, v in history[key]] == pytest.approx([v for _, v in values],
                                                                 rel=1e-6), key
        _written_by_rank_zero_only(folder)
        follower = (folder / ("torchrun-node1.log" if launcher == "torchrun"
                              else "srun-rank1.log")).read_text()
        assert f"MLflow run {run.info.run_id}" in follower  # learnt from rank zero
        assert "Traceback" not in _logs(folder)


def test_sigterm_to_both_ranks_mid_epoch_then_a_restart_resumes_the_run(tmp_path: Path) -> None:
    """12 steps per epoch; the ranks agree on a SIGTERM every 10 steps, so a signal after
    epoch 1's checkpoint stops them at step 20 or 30, inside epoch 2 or 3."""
    settings = (*SHRUNK, "trainer.max_epochs=3")
    ranks = _slurm_ranks(tmp_path, *settings, *TWO_NODES)
    last = tmp_path / "out" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not last.exists() and all(p.poll() is None for p in ranks):
        assert time.monotonic() < deadline, _logs(tmp_path)
        time.sleep(0.02)
    assert all(p.poll() is None for p in ranks), "a rank ended before the signal"
    for proc in ranks:  # what scancel does: SIGTERM to every task
        proc.send_signal(signal.SIGTERM)
    assert _wait(ranks, tmp_path) == [2, 2], _logs(tmp_path)
    stopped, partial = _only_run(tmp_path / "mlflow.db")
    reason = stopped.data.tags["binwrn.failure_reason"]
    assert stopped.info.status == "KILLED" and "stopped by SIGTERM at epoch" in reason, reason
    assert [s for s, _ in partial["train/loss"]] in ([1], [1, 2])  # killed inside epoch 2 or 3

    # The same config on one node of two processes, through torchrun: another launcher and
    # node count, the same config hash, so the same run continues from the SIGTERM checkpoint.
    (tmp_path / "first-attempt").mkdir()
    for log in tmp_path.glob("*.log"):
        log.rename(tmp_path / "first-attempt" / log.name)
    restarted = _torchrun(tmp_path, 1, 2, *settings, "trainer.num_nodes=1", "trainer.devices=2")
    assert _wait(restarted, tmp_path) == [0], _logs(tmp_path)
    resumed, history = _only_run(tmp_path / "mlflow.db")
    assert (resumed.info.run_id, resumed.info.status) == (stopped.info.run_id, "FINISHED")
    assert "binwrn.failure_reason" not in resumed.data.tags
    assert resumed.data.tags["binwrn.started_by"] == "torchrun"
    for key in ("train/loss", "train/acc", "lr"):
        assert [s for s, _ in history[key]] == [1, 2, 3], key  # none repeated, none missing
    assert history["test/acc"][-1][1] > 0.2  # chance is 0.1


def test_a_two_node_sweep_dry_run_shows_the_submitit_job_parameters(tmp_path: Path) -> None:
    """`binwrn-sweep p1_table2 --launcher slurm --smoke` with trainer.num_nodes=2, as a user
    runs it, with --dry-run: the SLURM size and #SBATCH lines of every job; nothing submitted,
    no store opened, no folder written."""
    sweep = Path(sys.executable).with_name("binwrn-sweep")
    done = subprocess.run(
        [str(sweep), "p1_table2", "--launcher", "slurm", "--smoke", "--dry-run", "trainer=ddp",
         "trainer.num_nodes=2", "trainer.devices=8", "hydra.launcher.cpus_per_task=12"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "p1_table2 (smoke): 13 jobs"
    assert ("SLURM, each job: 2 node(s) x 8 task(s) per node (16 srun tasks, one binwrn-run "
            "rank each), 8 GPUs per node (1 per task), 12 CPUs per task") in done.stdout
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --cpus-per-task=12", "#SBATCH --signal=USR2@120"):
        assert line in lines
    assert not any("--gpus-per-task" in line for line in lines)
    assert list(tmp_path.iterdir()) == []  # no store, no outputs, nothing submitted
