"""Where a run's wall time goes: seconds per phase, logged as `time/*` metrics.

The phases, in the order a run meets them (tracking/metrics.py names the keys):
- start-up, from the command (the process start, or a multirun job's own start) to the first
  training step: `time/to_first_step_s`, of it `time/startup/data_s` (config and data),
  `time/startup/imports_s` (Lightning and MLflow) and `time/startup/store_s` (the store:
  resume lookup, run creation);
- `time/loop_s`: each epoch from its first step's start to its last step's end (steps and
  the batches between them);
- `time/epoch_tests_s`: the per-epoch test (`test/*`); `time/recomputed_tests_s`: the tests
  with BN statistics recomputed while training (`test_recomputed/*`);
- `time/epoch_ends_s`: the rest of fit after the first step (epoch checkpoints, logging);
- `time/bn_recompute_s` and `time/final_test_s` after fit (the final test with the 25-crop
  test and the held-out split, where a run has them);
- `time/artifacts_s`: final.ckpt, the model summary, the checkpoint upload and the figure.
`time/process_s` is the process's age when these are logged, a moment before the run's
recorded end; what follows (recording the end, the process's exit) is measured from outside,
by whatever started the command (binwrn-bench's whole-run row), from outcome.json's
`ended_at`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import psutil
from lightning.pytorch.trainer.states import TrainerFn


class PhaseClock(pl.Callback):
    """Seconds per phase of one run (module docstring); the steps' own phases are read from
    the Trainer's hooks, the others timed by the code that runs them (`timed`)."""

    def __init__(self, started_at: float | None = None) -> None:
        """`started_at`: epoch seconds the start-up counts from; None: the process start."""
        self.process_start = psutil.Process().create_time()
        self.started_at = started_at or self.process_start
        self.to_first_step: float | None = None
        self.seconds: dict[str, float] = defaultdict(float)
        self._epoch_first_step: float | None = None
        self._last_step_end: float | None = None
        self._test_started: float | None = None

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - started

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if self.to_first_step is None:
            self.to_first_step = time.time() - self.started_at
            self._first_step = time.perf_counter()
        if self._epoch_first_step is None:
            self._epoch_first_step = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._last_step_end = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch_steps()
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._test_started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._test_started is not None:
            self.add("epoch_tests", time.perf_counter() - self._test_started)
            self._test_started = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_epoch_steps()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """What fit spent after its first step outside steps and tests: the epoch ends."""
        self._close_epoch_steps()
        if self.to_first_step is not None:
            spent = time.perf_counter() - self._first_step
            inside = sum(self.seconds.get(k, 0.0)
                         for k in ("loop", "epoch_tests", "recomputed_tests"))
            self.add("epoch_ends", max(spent - inside, 0.0))

    def _close_epoch_steps(self) -> None:
        if self._epoch_first_step is not None and self._last_step_end is not None:
            self.add("loop", self._last_step_end - self._epoch_first_step)
        self._epoch_first_step = self._last_step_end = None

    def metrics(self) -> dict[str, float]:
        """`time/*` so far (a phase never met is left out), with the process's age."""
        out = {f"time/{phase}_s": seconds for phase, seconds in self.seconds.items()}
        if self.to_first_step is not None:
            out["time/to_first_step_s"] = self.to_first_step
        return out | {"time/process_s": time.time() - self.process_start}
