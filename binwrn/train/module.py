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
from binwrn.train.optimizers import OptimizerSettings, optimizer_groups

__all__ = ["WRNClassifier", "optimizer_groups"]

TOP_K = 5  # paper 1 reports top-1 and top-5 error on ImageNet32 and ImageNet (Table 2)


def top_k_hits(logits: torch.Tensor, labels: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """1.0 where the label is among the k largest logits, else 0.0 (ties: topk's order)."""
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float()


class WRNClassifier(pl.LightningModule):
    """Cross-entropy training; logs train/* per epoch and test/* on every evaluation."""

    def __init__(self, model: nn.Module, schedule,
                 optimizer: OptimizerSettings | None = None) -> None:
        super().__init__()
        self.model, self.schedule = model, schedule
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
        n = labels.shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=n)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, batch_size=n,
                 prog_bar=True)
        if stage == "test" and logits.shape[1] > TOP_K:  # top-5 of 5 classes says nothing
            self.log("test/top5_acc", top_k_hits(logits, labels).mean(), on_step=False,
                     on_epoch=True, batch_size=n)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        # Remember a non-finite loss on the device (no host sync per step); checked per epoch.
        self._nonfinite = self._nonfinite | ~torch.isfinite(loss.detach())
        return loss

    def on_train_epoch_start(self) -> None:
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)

    def on_train_epoch_end(self) -> None:
        self.raise_if_diverged()

    def raise_if_diverged(self) -> None:
        """Also called by the epoch checkpoint before it saves: a diverged state is never
        checkpointed, so running the same config again starts over instead of resuming it."""
        if bool(self._nonfinite):
            raise Diverged(
                f"the training loss became NaN or infinite in epoch {self.current_epoch + 1} "
                f"(lr {self.current_lr:.3g}): lower optim.lr or check the data"
            )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    test_step = validation_step
