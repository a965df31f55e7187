"""Lightning DDP on one machine, with the other processes started by binwrn (`trainer=ddp`).

Lightning's own `ddp` launcher starts each extra process by re-running the command line. Under
Hydra that composes the config again, and in a `-m` sweep re-runs the whole sweep; inside a
joblib or submitit worker there is no command line to re-run; every copy would open its own
output folder and MLflow run (ecosystem notes 1.7). `ddp_spawn` avoids the re-run but pickles
the Trainer (with the MLflow client) into fresh processes for fit and again for test. So the
`binwrn-run` job is rank zero and decides everything first: the resolved config, the checkpoint
it resumes, the output folder. It writes them to `ddp_plan.json` there and starts every other
rank as `python -m binwrn.train.ddp_rank PLAN` with Lightning's rank environment. Those ranks
train and evaluate in lockstep and write nothing: metrics, checkpoints, outcome.json and the
MLflow run are rank zero's. Backend: NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import json
import os
import signal
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
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from binwrn.data.shards import AUGMENTATION, BN_RECOMPUTE, stream_seed
from binwrn.train.fast_path import on_cuda
from binwrn.train.sync_bn import cpu_synced, cpu_unsynced

PLAN_FILE = "ddp_plan.json"
CHILD_EXIT_S = 120  # a rank's exit after the last collective: its interpreter's teardown
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


class _PlanLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher, starting `binwrn.train.ddp_rank PLAN` as each rank."""

    def __init__(self, environment, num_processes: int, num_nodes: int, plan: Path) -> None:
        super().__init__(environment, num_processes, num_nodes)
        self.plan = plan

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ.update(MASTER_ADDR=env.main_address, MASTER_PORT=str(env.main_port),
                          NODE_RANK="0", LOCAL_RANK="0", WORLD_SIZE=str(self.num_processes))
        for local_rank in range(1, self.num_processes):
            command = [sys.executable, "-m", "binwrn.train.ddp_rank", str(self.plan)]
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


def ddp_trainer_settings(settings: dict, plan: Path) -> dict:
    """`trainer.*` for Lightning with binwrn's strategy object and synchronised BN plugin."""
    out = {**settings, "strategy": PlannedDDP(plan)}
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

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            _note_sigterm_only(trainer)


def _note_sigterm_only(trainer: pl.Trainer) -> None:
    """Replace Lightning's SIGTERM handler, which forwards the signal to the other ranks and
    broadcasts from inside the handler, a collective that can pair with a different one on
    another rank. Here the signal is only noted; the ranks agree on stopping at a step
    boundary (checkpoints.EpochCheckpoints). Lightning restores the handler when fit ends."""
    def note(signum, frame) -> None:
        trainer._signal_connector.received_sigterm = True

    signal.signal(signal.SIGTERM, note)


def align_streams_for_bn_recompute(trainer: pl.Trainer, seed: int) -> None:
    """Every rank recomputes BN statistics over the same batches (no collectives, the same
    result everywhere), so their random streams are set alike first."""
    if trainer.world_size > 1:
        torch.manual_seed(stream_seed(seed, BN_RECOMPUTE, trainer.current_epoch))


@contextmanager
def ddp_session(trainer: pl.Trainer):
    """Around rank zero's fit and test: stop the other ranks if rank zero fails, wait for them
    when it succeeds, and leave this process as it was for the next job of a sweep."""
    saved = {name: os.environ.get(name) for name in _RANK_VARIABLES}
    threads = torch.get_num_threads()
    launcher = trainer.strategy.launcher
    try:
        yield
    except BaseException:
        for proc in getattr(launcher, "procs", []):
            proc.kill()  # blocked in a collective rank zero will never join
        raise
    finally:
        for proc in getattr(launcher, "procs", []):
            try:
                proc.wait(timeout=CHILD_EXIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(threads)
