"""Test points with recomputed BN statistics while training (spec 1.4, the curves of 1.6).

The per-epoch test (`test/*`) uses BN's running averages. Paper 1's MATLAB code, which made
its curves, recomputes the moments over the training batches before every test it reports
([M]: all batches at the ends of SGDR cycles), so a point set beside those curves must too.
At the epochs `bn.recomputed_test_epochs` names, this callback recomputes the statistics on
the model, tests it, then puts back the BN buffers and the random generators it used: the
training goes on exactly as without it (weights, running statistics and the augmentation
that follows; tests/test_recomputed_test.py). The scores go to `test_recomputed/*` at the
epoch's step (tracking/metrics.py). The last epoch is left to the final test when that one
recomputes (bn.recompute_stats), so it is measured once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F

from binwrn.tracking.metrics import RECOMPUTED, as_view, with_error_pct
from binwrn.train.checkpoints import RandomState
from binwrn.train.module import TOP_K, top_k_hits

_BN = nn.modules.batchnorm._BatchNorm
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every BN layer's running statistics and batch count."""
    return {f"{name}.{key}": buffer.clone() for name, m in model.named_modules()
            if isinstance(m, _BN) for key, buffer in m.named_buffers(recurse=False)}


@torch.no_grad()
def restore_buffers(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    buffers = dict(model.named_buffers())
    for key, value in saved.items():
        buffers[key].copy_(value)


@torch.inference_mode()
def scores_of(model: nn.Module, batches: Batches, strategy) -> dict[str, float]:
    """test/acc, test/loss (and test/top5_acc with more than 5 classes) in eval mode over
    this process's test images, summed over the processes (`strategy.reduce`)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=strategy.root_device)
    top5 = False
    try:
        for images, labels in batches:
            logits = model(images).float()
            top5 = logits.shape[1] > TOP_K
            counts = torch.stack([
                F.cross_entropy(logits, labels, reduction="sum"),
                (logits.argmax(dim=1) == labels).sum().float(),
                top_k_hits(logits, labels).sum() if top5 else logits.new_zeros(()),
                logits.new_tensor(float(labels.shape[0]))]).double()
            totals += counts
    finally:
        model.train(was_training)
    loss, correct, top5_hits, images = strategy.reduce(totals, reduce_op="sum").tolist()
    scores = {"test/acc": correct / images, "test/loss": loss / images}
    return scores | ({"test/top5_acc": top5_hits / images} if top5 else {})


class RecomputedStatisticsTest(pl.Callback):
    """At the end of each epoch in `epochs` (1-based counts): recompute, test, restore.

    `recompute(trainer)` recomputes the BN statistics of the module's model in place (the
    same function as after training); `batches(device)` yields this process's test images as
    evaluation feeds them; `report(metrics)` receives the `test_recomputed/*` scores."""

    def __init__(self, epochs: frozenset[int], recompute: Callable[[pl.Trainer], None],
                 batches: Callable[[torch.device], Batches],
                 report: Callable[[dict[str, float]], None], final_recomputes: bool,
                 timed: Callable[[str], AbstractContextManager] | None = None) -> None:
        """`timed(phase)`: a context that times what it holds (the run's phase clock)."""
        self.epochs, self.recompute, self.batches = epochs, recompute, batches
        self.report, self.final_recomputes = report, final_recomputes
        self.timed = timed or (lambda phase: nullcontext())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done not in self.epochs or (self.final_recomputes and done == trainer.max_epochs):
            return
        model = pl_module.model
        generators, statistics = RandomState().state_dict(), bn_buffers(model)
        try:
            with self.timed("recomputed_tests"):
                self.recompute(trainer)
                with trainer.strategy.precision_plugin.forward_context():  # as test/* runs
                    scores = scores_of(model, self.batches(trainer.strategy.root_device),
                                       trainer.strategy)
        finally:
            restore_buffers(model, statistics)
            RandomState().load_state_dict(generators)
        self.report(with_error_pct(as_view(scores, RECOMPUTED)))
