"""Per-epoch metrics to MLflow, with step = number of epochs completed.

train/*, iterative/* (paper 3's schedule) and lr (of the epoch's last step) are logged once
per epoch; test/* whenever the test set was evaluated (every epoch by default), and
test_recomputed/* where a `RecomputedStatisticsTest` handed them over (tracking/metrics.py has
the three test views). test/error_pct is the paper's unit: 100 * (1 - test/acc);
test/top5_error_pct likewise from test/top5_acc, logged where a data set has more than 5
classes. The test after training goes to test_final/* (and test_recomputed/* when BN was
recomputed for it) at the last epoch's step, with the best test accuracy of any epoch and
its epoch (test_best/*; test_best_binary/* over the epochs with the most layers binary, in a
paper-3 run), which is what paper 3's code logs (spec 3.5).

Resuming never repeats or drops a step: a step the run already holds is not logged again
(a killed attempt may have logged it before its checkpoint was written), and the last
epoch's metrics travel in the checkpoint, so a step logged by nobody (killed between
checkpoint and logging) is logged on resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning.pytorch as pl

from binwrn.tracking.metrics import (
    BEST,
    BEST_BINARY,
    FINAL,
    RECOMPUTED,
    TEST,
    as_view,
    best_metrics,
    with_error_pct,
)

if TYPE_CHECKING:  # only rank zero has a run; the other DDP ranks need not import MLflow
    from binwrn.tracking.run import TrackedRun

__all__ = ["EpochMetricsToMlflow", "with_error_pct"]


def _read(trainer: pl.Trainer, prefixes: tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefixes)}


class EpochMetricsToMlflow(pl.Callback):
    """`run` may be set after construction, so the Trainer can be checked before it exists.

    Under DDP only rank zero has a run. Every rank still reads the epoch's metrics at the same
    hook: reading them is what averages them across processes (a collective), and a read on
    rank zero alone would pair with a different collective on the others.

    `final_views`: where the test after training goes: test_final, and test_recomputed too
    when that test follows a recomputation of the BN statistics.
    """

    def __init__(self, run: TrackedRun | None = None,
                 final_views: tuple[str, ...] = (FINAL,)) -> None:
        self.run, self.final_views = run, final_views
        self._test: dict[str, float] = {}
        self._more: dict[str, float] = {}  # this epoch's test_recomputed/*
        self._last_epoch: dict[str, float] = {}  # with "step"; saved in checkpoints
        # binary layers that epoch (-1: no schedule) -> (best test/acc, its epoch); saved too
        self._best: dict[int, tuple[float, int]] = {}

    def state_dict(self) -> dict:
        return {"last_epoch": dict(self._last_epoch), "best": dict(self._best)}

    def load_state_dict(self, state: dict) -> None:
        self._last_epoch = dict(state.get("last_epoch", {}))
        self._best = dict(state.get("best", {}))

    def _note_best(self, metrics: dict[str, float], step: int) -> None:
        if f"{TEST}/acc" not in metrics:
            return
        binary = int(metrics.get("iterative/binary_layers", -1))
        accuracy = metrics[f"{TEST}/acc"]
        if binary not in self._best or accuracy > self._best[binary][0]:
            self._best[binary] = (accuracy, step)

    def best_metrics(self) -> dict[str, float]:
        """test_best/* over every epoch (what paper 3's code logs: a partly binary net
        counts), and in a paper-3 run test_best_binary/* over the epochs with the most
        binary layers, the fully binary net the paper's claims are about."""
        if not self._best:
            return {}
        metrics = best_metrics(BEST, *max(self._best.values(), key=lambda b: (b[0], -b[1])))
        if max(self._best) >= 0:
            metrics |= best_metrics(BEST_BINARY, *self._best[max(self._best)])
        return metrics

    def add_epoch_metrics(self, metrics: dict[str, float]) -> None:
        """More metrics of the current epoch, logged with it (called before its end)."""
        self._more.update(metrics)

    def _log_once(self, metrics: dict[str, float], step: int) -> None:
        if self.run is not None and step not in self._logged_steps:
            self.run.log_metrics(metrics, step)
            self._logged_steps.add(step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Read the run's steps once (a resumed run may hold some); keep the set locally.
        self._logged_steps = self.run.logged_steps("train/loss") if self.run else set()
        if self._last_epoch:  # resumed: make sure the checkpoint's last epoch is recorded
            metrics = dict(self._last_epoch)
            self._log_once(metrics, int(metrics.pop("step")))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._test = _read(trainer, (f"{TEST}/",))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate of the epoch's last step
        metrics = with_error_pct({**_read(trainer, ("train/", "iterative/")), "lr": lr,
                                  **self._test, **self._more})
        self._test, self._more = {}, {}
        step = trainer.current_epoch + 1
        self._last_epoch = {**metrics, "step": step}
        self._note_best(metrics, step)
        self._log_once(metrics, step)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After fit, current_epoch is the number of epochs trained: the last epoch's step,
        # under keys of its own (tracking/metrics.py), logged once even if a resumed run's
        # earlier attempt got this far.
        scores = _read(trainer, (f"{TEST}/",))  # on every rank: reading is a collective
        step = trainer.current_epoch
        if self.run is None or step in self.run.logged_steps(f"{FINAL}/acc"):
            return
        metrics = {}
        for view in self.final_views:
            if view == RECOMPUTED and step in self.run.logged_steps(f"{RECOMPUTED}/acc"):
                continue
            metrics.update(with_error_pct(as_view(scores, view)))
        self.run.log_metrics({**metrics, **self.best_metrics()}, step)
