"""Step time of one model through binwrn's Lightning path and through a plain PyTorch loop.

Both paths get the same network (built by binwrn's config), the same uint8 data resident on
the device, the same on-device augmentation and the same SGD; only the loop differs. binwrn's
path is the one binwrn-run trains with: `fit.build` of the case's RunSpec (bench/case_spec.py),
its module, data, callbacks and Trainer. Timing starts after `warmup` steps (allocator, cuDNN
autotuning, compilation), ends after the last step (before the epoch's checkpoint and test),
and synchronises the device only at the two ends of the timed window, never per step.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.nn import functional as F

from binwrn.data.arrays import ImageSplit
from binwrn.data.augment import Augment
from binwrn.train.fast_path import FastPath, resolve_precision
from binwrn.train.fit import build
from binwrn.train.module import optimizer_groups
from binwrn.train.spec import RunSpec


@dataclass(frozen=True)
class Case:
    depth: int
    width: int
    bits: int
    batch_size: int = 125
    steps: int = 10
    warmup: int = 3


@dataclass
class Timing:
    ms_per_step: float
    peak_memory_mb: float
    warmup_s: float = 0.0  # the warm-up steps' wall time (compilation, autotuning included)

    def images_per_s(self, batch_size: int) -> float:
        return 1000.0 * batch_size / self.ms_per_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # the process's peak resident set so far (Linux: KiB)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_images(n: int, seed: int = 0) -> ImageSplit:
    """CIFAR-shaped uint8 images: the speed of a step does not depend on their content."""
    rng = np.random.default_rng(seed)
    return ImageSplit(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                      rng.integers(0, 10, n).astype(np.int64))


class _WindowTimer(pl.Callback):
    """Wall time from the start of step `warmup` to the end of step `last`, and of the
    warm-up steps before it."""

    def __init__(self, warmup: int, last: int, device: torch.device) -> None:
        self.warmup, self.last, self.device = warmup, last, device
        self.started = self.seconds = self.first_step = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if trainer.global_step == 0 and self.first_step is None:
            _sync(self.device)
            self.first_step = time.perf_counter()
        if trainer.global_step == self.warmup:
            _sync(self.device)
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.last and self.seconds is None:
            _sync(self.device)
            self.seconds = time.perf_counter() - self.started


def lightning_path(spec: RunSpec, case: Case, device: torch.device) -> Timing:
    """`case` through binwrn-run's own path: `fit.build(spec)` and its Trainer's fit."""
    timer = _WindowTimer(case.warmup, case.warmup + case.steps, device)
    with tempfile.TemporaryDirectory(prefix="binwrn-bench-") as work:
        parts = build(spec, Path(work), show_progress=False, extra_callbacks=(timer,))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        parts.trainer.fit(parts.classifier, datamodule=parts.data)
    return Timing(1000.0 * timer.seconds / case.steps, _peak_mb(device),
                  timer.started - timer.first_step)


def plain_loop(model, case: Case, device: torch.device, fast: FastPath,
               augment: Augment) -> Timing:
    """The minimal loop a PyTorch user would write for the same step, keeping the same
    per-epoch training loss and accuracy on the device as binwrn does (read once, at the end)."""
    model = model.to(device).train()
    optimizer = torch.optim.SGD(optimizer_groups(model, 5e-4), lr=0.1, momentum=0.9)
    split = synthetic_images(case.batch_size * (case.warmup + case.steps))
    images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(split.labels).to(device)
    bf16 = resolve_precision("auto", "gpu" if device.type == "cuda" else "cpu") == "bf16-mixed"
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(case.warmup + case.steps):
        if step == case.warmup:
            _sync(device)
            started = time.perf_counter()
        batch = slice(step * case.batch_size, (step + 1) * case.batch_size)
        x = fast.images(augment(images[batch].float()))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
            loss = F.cross_entropy(logits, labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        correct += (logits.argmax(dim=1) == labels[batch]).sum()
    float(loss_sum), float(correct)  # the once-per-epoch read binwrn also does
    _sync(device)
    return Timing(1000.0 * (time.perf_counter() - started) / case.steps, _peak_mb(device))
