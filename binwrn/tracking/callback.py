"""Per-epoch metrics to MLflow, with step = number of epochs completed.

train/*, iterative/* (paper 3's schedule) and lr (of the epoch's last step) are logged once
per epoch; test/* whenever the test set was evaluated (every epoch by default).
test/error_pct is the paper's unit: 100 * (1 - test/acc); test/top5_error_pct likewise from
test/top5_acc, logged where a data set has more than 5 classes.

Resuming never repeats or drops a step: a step the run already holds is not logged again
(a killed attempt may have logged it before its checkpoint was written), and the last
epoch's metrics travel in the checkpoint, so a step logged by nobody (killed between
checkpoint and logging) is logged on resume.
"""

from __future__ import annotations

import lightning.pytorch as pl

from binwrn.tracking.run import TrackedRun

ERROR_PCT = {"test/acc": "test/error_pct", "test/top5_acc": "test/top5_error_pct"}


def with_error_pct(metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` with the paper's error in percent beside each test accuracy it holds."""
    for accuracy, error in ERROR_PCT.items():
        if accuracy in metrics:
            metrics[error] = 100.0 * (1.0 - metrics[accuracy])
    return metrics


def _read(trainer: pl.Trainer, prefixes: tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefixes)}


class EpochMetricsToMlflow(pl.Callback):
    """`run` may be set after construction, so the Trainer can be checked before it exists."""

    def __init__(self, run: TrackedRun | None = None) -> None:
        self.run = run
        self._test: dict[str, float] = {}
        self._last_epoch: dict[str, float] = {}  # with "step"; saved in checkpoints

    def state_dict(self) -> dict:
        return {"last_epoch": dict(self._last_epoch)}

    def load_state_dict(self, state: dict) -> None:
        self._last_epoch = dict(state.get("last_epoch", {}))

    def _log_once(self, metrics: dict[str, float], step: int) -> None:
        if step not in self._logged_steps:
            self.run.log_metrics(metrics, step)
            self._logged_steps.add(step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Read the run's steps once (a resumed run may hold some); keep the set locally.
        self._logged_steps = self.run.logged_steps("train/loss")
        if self._last_epoch:  # resumed: make sure the checkpoint's last epoch is recorded
            metrics = dict(self._last_epoch)
            self._log_once(metrics, int(metrics.pop("step")))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._test = _read(trainer, ("test/",))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate of the epoch's last step
        metrics = with_error_pct({**_read(trainer, ("train/", "iterative/")), "lr": lr,
                                  **self._test})
        self._test = {}
        step = trainer.current_epoch + 1
        self._last_epoch = {**metrics, "step": step}
        self._log_once(metrics, step)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After fit, current_epoch is the number of epochs trained: the same step as the
        # last epoch's evaluation, logged later, so MLflow shows it as the latest value.
        self.run.log_metrics(with_error_pct(_read(trainer, ("test/",))), trainer.current_epoch)
