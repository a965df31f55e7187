"""The LightningModule: a classifier trained with the lr set every iteration from a schedule.

The optimizer comes from `binwrn.train.optimizers` (paper 1: SGD, momentum 0.9, weight decay
5e-4 on conv weights only; paper 3: Adam, or SGD with decay on every parameter). Optionally
SGD's momentum buffers are zeroed at each warm restart, as [M] does.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import Diverged
from binwrn.train.data_parallel import shard_loss_weight
from binwrn.train.optimizers import OptimizerSettings, optimizer_groups

__all__ = ["ImageClassifier", "optimizer_groups"]

TOP_K = 5  # paper 1 reports top-1 and top-5 error on ImageNet32 and ImageNet (Table 2)


def top_k_hits(logits: torch.Tensor, labels: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """1.0 where the label is among the k largest logits, else 0.0 (ties: topk's order)."""
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float()


class ImageClassifier(pl.LightningModule):
    """Cross-entropy training of any of binwrn's image classifiers (the WRNs, ResNet-18-wide,
    paper 3's MLPs, VGGs and ResNet-20); logs train/* per epoch and test/* on every
    evaluation. Checkpoints hold the net's weights under `model.`, not this class's name."""

    def __init__(self, model: nn.Module, schedule, optimizer: OptimizerSettings | None = None,
                 step_batch: int | None = None) -> None:
        """`step_batch`: images per optimizer step over all DDP processes (data_parallel.py);
        None on one device."""
        super().__init__()
        self.model, self.schedule, self.step_batch = model, schedule, step_batch
        self.optimizer_settings = optimizer or OptimizerSettings()  # paper 1's SGD
        self.reset_momentum = self.optimizer_settings.reset_momentum_at_restart
        self.current_lr = schedule.lr(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def configure_optimizers(self):
        return self.optimizer_settings.build(self.model, self.current_lr)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        optimizer = self.optimizers()
        epoch = self.current_epoch
        if batch_idx == 0 and self.reset_momentum and self.schedule.restarts_at(epoch):
            for state in optimizer.optimizer.state.values():
                if "momentum_buffer" in state and state["momentum_buffer"] is not None:
                    state["momentum_buffer"].zero_()
        t = epoch + (batch_idx + 1) / max(self.trainer.num_training_batches, 1)
        self.current_lr = self.schedule.lr(t)
        for group in optimizer.param_groups:
            group["lr"] = self.current_lr

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        # sync_dist: under DDP the epoch value is the mean over every process's images
        # (Lightning sums values and counts across processes; once per epoch, not per step).
        # The count is a float: Lightning averages an integer count over processes in its
        # own type, 201 test images on 2 processes giving 100 instead of 100.5 (2.6.6).
        n = float(labels.shape[0])
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=n,
                 sync_dist=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, batch_size=n,
                 prog_bar=True, sync_dist=True)
        if stage == "test" and logits.shape[1] > TOP_K:  # top-5 of 5 classes says nothing
            self.log("test/top5_acc", top_k_hits(logits, labels).mean(), on_step=False,
                     on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        # Remember a non-finite loss on the device (no host sync per step); checked per epoch.
        self._nonfinite = self._nonfinite | ~torch.isfinite(loss.detach())
        world = self.trainer.world_size
        if world > 1:  # DDP averages gradients: weight this process's share of the step
            loss = loss * shard_loss_weight(batch[1].shape[0], world, self.step_batch)
        return loss

    def on_train_epoch_start(self) -> None:
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)

    # A run resumed from a mid-epoch (SIGTERM) checkpoint skips on_train_epoch_start.
    on_train_start = on_train_epoch_start

    def on_train_epoch_end(self) -> None:
        self.raise_if_diverged()

    def raise_if_diverged(self) -> None:
        """Also called by the epoch checkpoint before it saves: a diverged state is never
        checkpointed, so running the same config again starts over instead of resuming it."""
        diverged = bool(self._nonfinite)
        if self.trainer.world_size > 1:  # all processes stop together, or none
            diverged = self.trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            raise Diverged(
                f"the training loss became NaN or infinite in epoch {self.current_epoch + 1} "
                f"(lr {self.current_lr:.3g}): lower optim.lr or check the data"
            )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    test_step = validation_step
