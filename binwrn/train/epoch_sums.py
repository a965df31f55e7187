"""The running sums behind this epoch's train/* means, carried by a mid-epoch checkpoint.

Lightning averages `self.log(..., on_epoch=True)` values over an epoch in sums it does not
checkpoint, so an epoch resumed after a SIGTERM would average its remaining steps only. The
sums of the steps done travel in the checkpoint and are added back after the resumed epoch's
first step: x + s equals s + x bit for bit, so the epoch's means are those of an
uninterrupted run. (One process only: under DDP each rank's augmentation stream restarts
on resume anyway, train/ddp.py.)
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch


def _train_sums(trainer: pl.Trainer) -> dict:
    # Lightning keeps an epoch's accumulators in the training loop's result collection
    # (no public accessor; lightning 2.6).
    results = trainer.fit_loop.epoch_loop._results
    return {key: metric for key, metric in results.items()
            if metric.is_tensor and metric.meta.on_epoch and metric.meta.is_mean_reduction}


class EpochSums(pl.Callback):
    """Save this epoch's sums when a checkpoint is taken mid-epoch; add them back on resume."""

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._pending: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict:
        trainer = self._trainer
        # Under DDP each rank holds its own sums and only rank zero writes: not carried there.
        if trainer is None or not trainer.training or trainer.world_size > 1:
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if not 0 < done < trainer.num_training_batches:  # at an epoch's end: nothing runs on
            return {}
        return {key: (m.value.detach().cpu().clone(),
                      m.cumulated_batch_size.detach().cpu().clone())
                for key, m in _train_sums(trainer).items()}

    def load_state_dict(self, state: dict) -> None:
        self._pending = dict(state)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if not self._pending:
            return
        sums = _train_sums(trainer)
        for key, (value, count) in self._pending.items():
            if key in sums:
                metric = sums[key]
                metric.value = metric.value + value.to(metric.value.device)
                metric.cumulated_batch_size = metric.cumulated_batch_size + count.to(
                    metric.cumulated_batch_size.device)
        self._pending = {}
