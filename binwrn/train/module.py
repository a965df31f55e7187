"""The LightningModule: SGD on a WRN with the lr set every iteration from a schedule.

Paper 1 section 3.2 / spec 1.5.1: SGD, momentum 0.9, no Nesterov, lr 0.1, weight decay 5e-4
on conv weights only (the input-BN and any internal BN affine parameters get none, as in [K]
and [M]). Optionally the momentum buffers are zeroed at each warm restart, as [M] does.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import Diverged
from binwrn.models.binary import BinaryConv2d
from binwrn.train.data_parallel import shard_loss_weight


def optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Conv weights (the latent fp32 weights when 1-bit) decay; everything else does not."""
    conv = [m.weight for m in model.modules() if isinstance(m, BinaryConv2d)]
    conv_ids = {id(p) for p in conv}
    other = [p for p in model.parameters() if id(p) not in conv_ids]
    return [{"params": conv, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


class WRNClassifier(pl.LightningModule):
    """Cross-entropy training; logs train/* per epoch and test/* on every evaluation."""

    def __init__(
        self, model: nn.Module, schedule, momentum: float = 0.9, weight_decay: float = 5e-4,
        nesterov: bool = False, reset_momentum: bool = False, step_batch: int | None = None,
    ) -> None:
        """`step_batch`: images per optimizer step over all DDP processes (data_parallel.py);
        None on one device."""
        super().__init__()
        self.model, self.schedule, self.step_batch = model, schedule, step_batch
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.reset_momentum = reset_momentum
        self.current_lr = schedule.lr(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def configure_optimizers(self):
        return torch.optim.SGD(
            optimizer_groups(self.model, self.weight_decay), lr=self.current_lr,
            momentum=self.momentum, nesterov=self.nesterov,
        )

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
