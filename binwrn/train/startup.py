"""Seconds from the user's command (the process start, or a multirun job's own start) to the
first training step."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import psutil


class FirstStepClock(pl.Callback):
    """Startup cost as a user feels it: imports, data loading, model build, Trainer setup."""

    def __init__(self, started_at: float | None = None) -> None:
        """`started_at`: epoch seconds the clock counts from; None: the process start."""
        self.started_at = started_at or psutil.Process().create_time()
        self.seconds: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if self.seconds is None:
            self.seconds = time.time() - self.started_at

    def metrics(self) -> dict[str, float]:
        return {} if self.seconds is None else {"time/to_first_step_s": self.seconds}
