"""Lightning DDP on one machine, with the other processes started by binwrn (`trainer=ddp`).
(On a cluster, srun or torchrun start every rank instead: train/cluster.py.)

Lightning's own `ddp` launcher starts each extra process by re-running the command line. Under
Hydra that composes the config again, and in a `-m` sweep re-runs the whole sweep; inside a
joblib or submitit worker there is no command line to re-run; every copy would open its own
output folder and MLflow run (ecosystem notes 1.7). `ddp_spawn` avoids the re-run but pickles
the Trainer (with the MLflow client) into fresh processes for fit and again for test. So the
`binwrn-run` job is rank zero and decides everything first: the resolved config, the checkpoint
it resumes, the output folder. It writes them to `ddp_plan.json` there and starts every other
rank as `python -m binwrn.ddp_rank PLAN` with Lightning's rank environment. Those ranks
train and evaluate in lockstep and write nothing: metrics, checkpoints, outcome.json and the
MLflow run are rank zero's. Backend: NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from lightning.pytorch.strategies import DDPStrategy

from binwrn.data.shards import AUGMENTATION, BN_RECOMPUTE, stream_seed
from binwrn.environment import restored_environ
from binwrn.train.fast_path import on_cuda
from binwrn.train.lightning_private import (
    _ChildProcessObserver,
    _set_num_threads_if_needed,
    _SubprocessScriptLauncher,
)
from binwrn.train.sync_bn import cpu_synced, cpu_unsynced

log = logging.getLogger(__name__)
PLAN_FILE = "ddp_plan.json"
# Seconds the other ranks get to exit after rank zero's last collective (their interpreter's
# teardown), after a finished run and after a failure, before they are killed.
FINISHED_EXIT_S, FAILED_EXIT_S = 120, 20
WATCH_PERIOD_S = 5  # how often Lightning's watcher thread looks at the other ranks
# Variables the launcher sets in rank zero's own environment; removed afterwards, so that the
# next job of a sweep run in the same process starts its own processes again.
_RANK_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE",
                   "OMP_NUM_THREADS")


@dataclass(frozen=True)
class Plan:
    """What rank zero decided, for the other ranks: the same config, resume point, folder."""

    config: dict
    checkpoint: str | None
    work_dir: str

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PLAN_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(**json.loads(Path(path).read_text()))


class _Watcher(_ChildProcessObserver):
    """Lightning's watcher, which can be stopped: its loop would otherwise look once more
    after any request to stop, and SIGKILL this process for a rank it has just ended."""

    stopped = False

    def _run(self) -> bool:
        return True if self.stopped else super()._run()


class _PlanLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, starting `binwrn.ddp_rank PLAN` as each rank.

    Lightning's watcher thread SIGKILLs rank zero when another rank exits with an error (a
    rank blocked in a collective would wait forever). Rank zero stops that watcher before it
    ends the other ranks itself, so that it lives to record the run's end in MLflow.
    """

    def __init__(self, environment, num_processes: int, num_nodes: int, plan: Path) -> None:
        super().__init__(environment, num_processes, num_nodes)
        self.plan = plan
        self._watcher: _Watcher | None = None

    def launch(self, function, *args, trainer=None, **kwargs):
        self.cluster_environment.validate_settings(num_devices=self.num_processes,
                                                   num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self._watcher = _Watcher(main_pid=os.getpid(), child_processes=self.procs,
                                     sleep_period=WATCH_PERIOD_S)
            self._watcher.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stopped = True
            self._watcher.join(timeout=2 * WATCH_PERIOD_S)  # it ends at its next wake-up

    def kill(self, signum) -> None:  # Lightning's Ctrl-C handling kills the ranks this way
        self.stop_watching()
        super().kill(signum)

    def end_ranks(self, grace_s: float) -> None:
        """Wait up to `grace_s` for the other ranks to exit, then kill those still running."""
        for proc in self.procs:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("DDP rank process %d did not exit; killing it", proc.pid)
                proc.kill()
                proc.wait()

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ.update(MASTER_ADDR=env.main_address, MASTER_PORT=str(env.main_port),
                          NODE_RANK="0", LOCAL_RANK="0", WORLD_SIZE=str(self.num_processes))
        for local_rank in range(1, self.num_processes):
            command = [sys.executable, "-m", "binwrn.ddp_rank", str(self.plan)]
            self.procs.append(subprocess.Popen(
                command, env={**os.environ, "LOCAL_RANK": str(local_rank)}))


class PlannedDDP(DDPStrategy):
    """DDP whose other ranks are started from the plan file (one machine: LightningEnvironment,
    also inside a SLURM job, whose one task holds all the GPUs)."""

    def __init__(self, plan: Path, **kwargs) -> None:
        super().__init__(cluster_environment=LightningEnvironment(), **kwargs)
        self.plan = plan

    def _configure_launcher(self) -> None:
        self._launcher = _PlanLauncher(self.cluster_environment, self.num_processes,
                                       self.num_nodes, self.plan)


class SyncBatchNormAnyDevice(TorchSyncBatchNorm):
    """Lightning's layer-sync plugin for `trainer.sync_batchnorm=true`: torch's SyncBatchNorm
    on CUDA, binwrn's CpuSyncBatchNorm on a CPU (train/sync_bn.py). Lightning reverts the
    layers to plain BN when fit ends: evaluation and the BN recomputation see plain BN."""

    def __init__(self, on_cuda: bool) -> None:
        self.on_cuda = on_cuda

    def apply(self, model):
        return super().apply(model) if self.on_cuda else cpu_synced(model)

    def revert(self, model):
        return super().revert(model) if self.on_cuda else cpu_unsynced(model)


def ddp_trainer_settings(settings: dict, plan: Path | None, environment=None) -> dict:
    """`trainer.*` for Lightning with binwrn's strategy object and synchronised BN plugin:
    ranks started from the plan file (one machine), or by the cluster, whose Lightning
    environment (SLURM, torchelastic) says who is who (train/cluster.py)."""
    strategy = PlannedDDP(plan) if plan is not None else DDPStrategy(
        cluster_environment=environment)
    out = {**settings, "strategy": strategy}
    if out.pop("sync_batchnorm", False):
        sync = SyncBatchNormAnyDevice(on_cuda=on_cuda(settings["accelerator"]))
        out["plugins"] = [*(out.get("plugins") or []), sync]
    return out


class RankRandomStreams(pl.Callback):
    """Each rank augments with its own random stream, a function of (seed, epoch, rank):
    ranks must not draw the same flips and crops, and a resume at an epoch boundary draws what
    an uninterrupted run would have. One process keeps the global generator, which its
    checkpoints carry (checkpoints.RandomState)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(stream_seed(self.seed, AUGMENTATION, trainer.current_epoch,
                                          trainer.global_rank))

    # A run resumed from a mid-epoch (SIGTERM) checkpoint skips on_train_epoch_start; the
    # restored generator is rank zero's, so every rank draws its own stream again.
    on_train_start = on_train_epoch_start


def align_streams_for_bn_recompute(trainer: pl.Trainer, seed: int) -> None:
    """Every rank recomputes BN statistics over the same batches (no collectives, the same
    result everywhere), so their random streams are set alike first."""
    if trainer.world_size > 1:
        torch.manual_seed(stream_seed(seed, BN_RECOMPUTE, trainer.current_epoch))


def share_bn_statistics(model: torch.nn.Module) -> None:
    """Rank zero's recomputed BN statistics on every rank. The ranks recompute over the same
    batches and agree already on the in-memory path; ImageNet's loader workers crop with
    seeds that depend on how many workers a rank has, which may differ between nodes."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            for buffer in (module.running_mean, module.running_var):
                if buffer is not None:
                    torch.distributed.broadcast(buffer, src=0)


@contextmanager
def ddp_session(trainer: pl.Trainer):
    """Around rank zero's fit and test: end the other ranks with it (they exit by themselves
    after a finished run or a stop all ranks agreed on; one blocked in a collective that
    rank zero will never join is killed), and leave this process as it was for the next
    job of a sweep."""
    threads = torch.get_num_threads()
    launcher = trainer.strategy.launcher
    with restored_environ(_RANK_VARIABLES):
        try:
            yield
        except BaseException:
            launcher.stop_watching()
            launcher.end_ranks(grace_s=FAILED_EXIT_S)
            raise
        finally:
            launcher.stop_watching()
            launcher.end_ranks(grace_s=FINISHED_EXIT_S)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            torch.set_num_threads(threads)
