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
- Trust: each new `last.ckpt`'s SHA-256 is recorded on the run (tag
  `binwrn.checkpoint_sha256`, the one it replaces in `binwrn.checkpoint_sha256_previous`)
  before it is renamed into place. A resume reads a checkpoint only from under the output
  root, only when its digest is one of those two, and only with `weights_only=True`
  (`verify_checkpoint`); an unreadable one marks its run FAILED and a new run starts.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from binwrn.errors import ConfigError, Interrupted
from binwrn.kill_points import kill_point

LAST = "last.ckpt"
# What a Lightning checkpoint binwrn resumes from holds (a foreign file need not).
CHECKPOINT_KEYS = ("state_dict", "loops", "callbacks", "optimizer_states", "epoch")
# Under DDP the ranks agree on a SIGTERM every this many steps: seconds, well inside the two
# minutes SLURM grants between its signal and the kill (signal_delay_s).
SIGTERM_CHECK_STEPS = 10


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_save(trainer: pl.Trainer, path: Path,
                record: Callable[[str], None] | None = None) -> str | None:
    """Every rank takes part (Lightning gathers and synchronises); rank zero writes, calls
    `record(sha256)` before renaming the file into place, and returns the digest."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    trainer.save_checkpoint(partial, weights_only=False)  # the whole state, said explicitly
    if not trainer.is_global_zero:
        return None
    digest = sha256_of(partial)
    if record is not None:
        record(digest)
    kill_point("checkpoint_write")
    os.replace(partial, path)
    return digest


def remove_stale_partials(folder: Path) -> list[Path]:
    """Half-written checkpoints a killed process left (`.last.ckpt.<pid>.partial`, ...); call
    it holding the folder's OutputLock, so that none of them can still be in use."""
    stale = sorted(Path(folder).glob(".*.partial")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


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
        # Rank zero's MLflow run sets these: `record_digests(new, replaced)` logs the digests,
        # `on_disk` is the digest of the last.ckpt now in the folder (the one resumed from).
        self.record_digests: Callable[[str, str | None], None] | None = None
        self.on_disk: str | None = None

    def _save_last(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        record = self.record_digests
        digest = atomic_save(trainer, self.folder / LAST,
                             None if record is None else lambda new: record(new, self.on_disk))
        if digest is not None:
            self.on_disk = digest

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
        self._save_last(trainer)
        last = self.folder / LAST
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

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if batch_idx == trainer.num_training_batches // 2:
            kill_point("mid_epoch")  # a test hook (binwrn/kill_points.py)
        if self._stop_requested(trainer):
            self._save_last(trainer)
            raise Interrupted(
                f"stopped by SIGTERM at epoch {trainer.current_epoch + 1}, step "
                f"{trainer.global_step}; checkpoint saved, the same command resumes it"
            )

    def on_test_batch_end(self, *args) -> None:
        kill_point("final_test")  # a test hook (binwrn/kill_points.py)


class OutputLock:
    """An exclusive lock on an output folder while a process trains into it, so a resume
    never picks a run that is still alive (the OS drops the lock when a process dies).
    The file holds the pid of the process that holds it, for the message of a second one."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / ".binwrn.lock"

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip()
            self._file.close()
            raise ConfigError(
                f"The output folder {self.path.parent} is in use by another binwrn process"
                f"{f' (pid {holder})' if holder else ''}: wait for it to end, or give this "
                "run a folder of its own (hydra.run.dir=...)."
            ) from None
        self._file.truncate(0)
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
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
    if not last.resolve().is_relative_to(folder.resolve()):  # a link out of the folder
        raise UnusableCheckpoint(f"it is a link to {last.resolve()}, outside the run's "
                                 "output folder (binwrn writes last.ckpt as a file)")
    return last


class UnusableCheckpoint(Exception):
    """A checkpoint a resume must not (or cannot) load; the message says why."""


def _load_failure(err: Exception) -> str:
    """What torch.load found wrong, without its advice to load with weights_only=False (the
    one thing a file from outside must never get): the unpickler's own line where it has one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    found = [line for line in lines if line.startswith("WeightsUnpickler error:")]
    first = (found or lines or [""])[0]
    if "weights_only" in first and not found:
        first = "it holds objects that are not tensors or plain values"
    return f"{type(err).__name__}: {first[:200]}"


def checkpoint_size_bound(model: torch.nn.Module) -> int:
    """The most bytes a training checkpoint of `model` can hold: its weights and buffers four
    times over (the weights, SGD's momentum or Adam's two moments, a spare copy) and 64 MiB
    for loop state, metrics and random states. A larger file is not one binwrn wrote."""
    state = sum(t.numel() * t.element_size()
                for t in itertools.chain(model.parameters(), model.buffers()))
    return 4 * state + 64 * 2**20


def verify_checkpoint(path: Path, digests: set[str], max_bytes: int | None = None) -> str:
    """The SHA-256 of `path` once it is one of the run's recorded `digests` and loads as a
    Lightning checkpoint with `weights_only=True` (passed explicitly, so that
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn it off); else UnusableCheckpoint.

    The file's size is checked against `max_bytes` before a byte is read (a 1 TiB sparse file
    must not be read into memory), then the file is read once: the bytes hashed are the bytes
    unpickled, and bytes that do not match a recorded digest are never unpickled at all."""
    import io

    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise UnusableCheckpoint(f"it is {size:,} bytes, more than a checkpoint of "
                                         f"this model can be ({max_bytes:,})")
            data = file.read(size + 1)
    except OSError as err:
        raise UnusableCheckpoint(f"cannot be read ({err.strerror})") from None
    if len(data) > size:
        raise UnusableCheckpoint("it grew while being read (another process writes it)")
    digest = hashlib.sha256(data).hexdigest()
    if not digests:
        raise UnusableCheckpoint("the run records no digest of it (binwrn.checkpoint_sha256)")
    if digest not in digests:
        raise UnusableCheckpoint(f"its SHA-256 {digest[:12]}... is not the one the run "
                                 "recorded when it wrote it (replaced or altered)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, a global weights_only refuses
        raise UnusableCheckpoint(f"it does not load with weights_only=True "
                                 f"({_load_failure(err)})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UnusableCheckpoint(f"it is not a binwrn training checkpoint (no {missing[0]})")
    return digest
