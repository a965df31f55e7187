"""Checkpoints a killed run can resume from (reliability issue).

- `last.ckpt` is rewritten at the end of every epoch, atomically: the new file is written
  under a temporary name and renamed over the old one, so a kill while writing leaves the
  previous checkpoint intact.
- The epoch that ends a warm-restart cycle is also kept as `cycle-end-epochNNNN.ckpt`; only
  the newest `keep_cycle_ends` of those are kept.
- SIGTERM (what SLURM and most schedulers send before killing) is noticed by Lightning's
  signal handler; the next step saves `last.ckpt` mid-epoch and stops the run. Resuming from
  a mid-epoch checkpoint continues with the epoch's remaining steps on a new shuffle, so only
  epoch-boundary checkpoints (the SIGKILL case) repeat an uninterrupted run exactly.
- Python's, NumPy's and torch's random states travel in the checkpoint, so the shuffling and
  augmentation after a resume are those an uninterrupted run would have drawn (under DDP the
  streams are functions of seed, epoch and rank instead: data/shards.py, train/ddp.py).
- Under DDP every rank takes part in each save (Lightning gathers and synchronises) and rank
  zero alone writes; the ranks agree on a SIGTERM at a step boundary and stop together.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from binwrn.errors import Interrupted

LAST = "last.ckpt"
# Under DDP the ranks agree on a SIGTERM every this many steps: seconds, well inside the two
# minutes SLURM grants between its signal and the kill (signal_delay_s).
SIGTERM_CHECK_STEPS = 10


def atomic_save(trainer: pl.Trainer, path: Path) -> None:
    """Every rank takes part (Lightning gathers and synchronises); rank zero writes."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    trainer.save_checkpoint(partial)
    if trainer.is_global_zero:
        os.replace(partial, path)


class RandomState(pl.Callback):
    """Carries the global random generators through save and restore."""

    # Only tensors and plain Python values, so the checkpoint loads with weights_only=True.
    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {"python": random.getstate(),
                 "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                           "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
                 "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        random.setstate(state["python"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class EpochCheckpoints(pl.Callback):
    """Atomic `last.ckpt` every epoch, kept copies at cycle ends, a save on SIGTERM."""

    def __init__(self, folder: Path, ends_cycle, keep_cycle_ends: int = 2) -> None:
        """`ends_cycle(epochs_done)` says whether a warm-restart cycle ends there."""
        self.folder, self.ends_cycle = Path(folder), ends_cycle
        self.keep_cycle_ends = keep_cycle_ends
        self._sigterm = False  # under DDP: noted here, not by Lightning (on_train_start)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under DDP, replace Lightning's SIGTERM handling: its handler forwards the signal and
        broadcasts from inside the handler, and its loops then stop this rank alone, leaving
        the others blocked in a collective. Here the signal is only noted and the ranks agree
        at a step boundary (`_stop_requested`). Lightning restores the handler after fit."""
        if trainer.world_size > 1:
            signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "_sigterm", True))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Callbacks run before the module's own epoch-end hook, so check divergence here.
        getattr(pl_module, "raise_if_diverged", lambda: None)()
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        last = self.folder / LAST
        atomic_save(trainer, last)
        epochs_done = trainer.current_epoch + 1
        if self.ends_cycle(epochs_done) and trainer.is_global_zero:
            kept = self.folder / f"cycle-end-epoch{epochs_done:04d}.ckpt"
            partial = kept.with_name(f".{kept.name}.partial")
            partial.unlink(missing_ok=True)
            os.link(last, partial)  # the same bytes under a second name, renamed into place
            os.replace(partial, kept)
            for old in sorted(self.folder.glob("cycle-end-epoch*.ckpt"))[:-self.keep_cycle_ends]:
                old.unlink()

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        """SIGTERM seen here, or under DDP on any rank: all ranks stop at the same step, so
        they agree every `SIGTERM_CHECK_STEPS` steps (a tiny all-reduce, not a sync per step)."""
        if trainer.world_size == 1:
            return bool(getattr(trainer, "received_sigterm", False))
        if trainer.global_step % SIGTERM_CHECK_STEPS:
            return False
        return trainer.strategy.reduce_boolean_decision(self._sigterm, all=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self._stop_requested(trainer):
            if trainer.is_global_zero:
                self.folder.mkdir(parents=True, exist_ok=True)
            atomic_save(trainer, self.folder / LAST)
            raise Interrupted(
                f"stopped by SIGTERM at epoch {trainer.current_epoch + 1}, step "
                f"{trainer.global_step}; checkpoint saved, the same command resumes it"
            )


class OutputLock:
    """An exclusive lock on an output folder while a process trains into it, so a resume
    never picks a run that is still alive (the OS drops the lock when a process dies)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / ".binwrn.lock"

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()

    def held_elsewhere(self) -> bool:
        if not self.path.exists():
            return False
        with self.path.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False


def resumable_checkpoint(output_dir: str | Path) -> Path | None:
    """`last.ckpt` of a dead run's output folder, or None if missing or still in use."""
    folder = Path(output_dir)
    last = folder / "checkpoints" / LAST
    if not last.is_file() or OutputLock(folder).held_elsewhere():
        return None
    return last
