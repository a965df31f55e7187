"""What Lightning's DDP gets from binwrn, on every rank: its strategy with the cluster
environment that says who is who, synchronised BN on any device, each rank's own random
stream for augmentation, and the same BN statistics on every rank after a recomputation.
Who starts the ranks: train/local_ranks.py on one machine, srun or torchrun on a cluster
(train/cluster.py). Backend: NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from lightning.pytorch.strategies import DDPStrategy

from binwrn.data.shards import AUGMENTATION, BN_RECOMPUTE, stream_seed
from binwrn.train.fast_path import on_cuda
from binwrn.train.sync_bn import cpu_synced, cpu_unsynced


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


def ddp_trainer_settings(settings: dict, environment) -> dict:
    """`trainer.*` for Lightning with binwrn's strategy object and synchronised BN plugin;
    `environment` (Lightning's torchelastic or SLURM environment, train/cluster.py) says
    who is who."""
    out = {**settings, "strategy": DDPStrategy(cluster_environment=environment)}
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
