"""Learning-rate schedules as functions of fractional epochs t (updated every iteration).

sgdr (paper 1 section 3.3.1, spec 1.5.2): cosine cycles of 2, 4, 8, ... epochs, so restarts
come after epochs 2, 6, 14, 30, 62, 126 (and the cycles keep doubling past 254).
In a cycle of length T that started at s: lr = lr_min + (lr_max-lr_min)(1 + cos(pi (t-s)/T))/2
with t = epochs done including the fraction of the current one, counted after the batch as in
[M] (t = (epoch - start) + j/N, j = 1..N), so the last batch of a cycle runs at lr_min.
lr_min defaults to 1e-5 as both official codes; the paper text says 1e-4 (open question 1).
step: lr_max, x0.1 after each milestone (Fig. 6 comparison: 85 and 170).
A schedule that does not fit `trainer.max_epochs` is trained as asked, with a warning
(`mismatch`): stopping mid-cycle is a legitimate short run, but rarely what a user meant.
cosine: one cosine cycle over the whole run (paper 2's recipe).
constant: lr_max throughout (paper 3's Adam runs: "no schedule", spec 3.3).
sgdr and cosine take `per_batch` (default true, [K] and [M]); false holds each epoch at the
rate the cosine has at the epoch's start, as [SZ]'s per-epoch scheduler (spec 1.5.2, 1.8; the
ablation of spec 4 item 6(j)): a cycle's first epoch at lr_max, its last above lr_min.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from binwrn.errors import ConfigError
from binwrn.train.rules import SCHEDULES


def _cosine(lr_max: float, lr_min: float, progress: float) -> float:
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * progress))


def _epoch_of(t: float) -> int:
    """The 0-based epoch a step belongs to: t counts epochs done after the step, in (e, e+1]."""
    return math.ceil(t) - 1 if t > 0 else 0


@dataclass(frozen=True)
class SGDR:
    lr_max: float = 0.1
    lr_min: float = 1e-5
    first_cycle: int = 2
    cycle_mult: int = 2
    per_batch: bool = True

    def __post_init__(self) -> None:
        if self.first_cycle <= 0 or self.cycle_mult < 1:
            raise ConfigError(
                f"schedule.first_cycle={self.first_cycle} and schedule.cycle_mult="
                f"{self.cycle_mult} must be positive: cycles need a length of at least 1 epoch."
            )

    def cycle_at(self, t: float) -> tuple[int, int]:
        """(start, length) in epochs of the cycle containing t, a cycle owning its end point."""
        start, length = 0, self.first_cycle
        while t > start + length:
            start, length = start + length, length * self.cycle_mult
        return start, length

    def lr(self, t: float) -> float:
        if not self.per_batch:  # the epoch's start, inside the epoch's own cycle
            epoch = _epoch_of(t)
            start, length = self.cycle_at(epoch + 0.5)
            return _cosine(self.lr_max, self.lr_min, (epoch - start) / length)
        start, length = self.cycle_at(t)
        return _cosine(self.lr_max, self.lr_min, (t - start) / length)

    def restarts_at(self, epoch: int) -> bool:
        """True when a new cycle begins at the start of this (0-based) epoch, not the first."""
        return epoch > 0 and self.cycle_at(epoch + 1e-9)[0] == epoch

    def restart_epochs(self, last: int) -> tuple[int, ...]:
        """Every epoch from 1 to `last` where `restarts_at` holds, one step per cycle (a loop
        over epochs asking `restarts_at` costs epochs x cycles)."""
        starts, start, length = [], self.first_cycle, self.first_cycle
        while start <= last:
            starts.append(start)
            length *= self.cycle_mult
            start += length
        return tuple(starts)

    def mismatch(self, max_epochs: int) -> str | None:
        start, length = self.cycle_at(max_epochs)
        if max_epochs == start + length:
            return None
        ends, end = [], 0
        while len(ends) < 8:
            end = end + self.first_cycle * self.cycle_mult ** len(ends)
            ends.append(end)
        return (f"trainer.max_epochs={max_epochs} stops inside the SGDR cycle of epochs "
                f"{start + 1}-{start + length}, before its learning rate has decayed; cycles "
                f"end after epochs {', '.join(map(str, ends))}")


@dataclass(frozen=True)
class StepDecay:
    lr_max: float = 0.1
    milestones: tuple[int, ...] = (85, 170)
    factor: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(sorted(self.milestones)))

    def lr(self, t: float) -> float:
        # An epoch runs at one rate: count the milestones passed when the epoch began.
        epoch = _epoch_of(t)
        return self.lr_max * self.factor ** bisect.bisect_right(self.milestones, epoch)

    def restarts_at(self, epoch: int) -> bool:
        return False

    def restart_epochs(self, last: int) -> tuple[int, ...]:
        return ()

    def mismatch(self, max_epochs: int) -> str | None:
        unreached = [m for m in self.milestones if m >= max_epochs]
        if not unreached:
            return None
        return (f"schedule.milestones {list(self.milestones)} include epochs the trainer never "
                f"reaches (trainer.max_epochs={max_epochs})")


@dataclass(frozen=True)
class Cosine:
    lr_max: float = 0.1
    lr_min: float = 1e-5
    epochs: int = 300
    per_batch: bool = True

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ConfigError(f"schedule.epochs={self.epochs} must be positive.")

    def lr(self, t: float) -> float:
        if not self.per_batch:
            t = _epoch_of(t)
        return _cosine(self.lr_max, self.lr_min, min(t / self.epochs, 1.0))

    def restarts_at(self, epoch: int) -> bool:
        return False

    def restart_epochs(self, last: int) -> tuple[int, ...]:
        return ()

    def mismatch(self, max_epochs: int) -> str | None:
        if self.epochs == max_epochs:
            return None
        return (f"schedule.epochs={self.epochs} differs from trainer.max_epochs={max_epochs}: "
                "the cosine is cut short or ends flat at lr_min")


@dataclass(frozen=True)
class Constant:
    lr_max: float = 0.1

    def lr(self, t: float) -> float:
        return self.lr_max

    def restarts_at(self, epoch: int) -> bool:
        return False

    def restart_epochs(self, last: int) -> tuple[int, ...]:
        return ()

    def mismatch(self, max_epochs: int) -> str | None:
        return None


def build_schedule(name: str, lr_max: float, **options):
    """The schedule object for `schedule.name`; options are that schedule's keys."""
    kinds = dict(zip(SCHEDULES, (SGDR, StepDecay, Cosine, Constant), strict=True))
    if name not in kinds:
        raise ConfigError(f"schedule={name} is unknown: use one of {', '.join(kinds)}.")
    return kinds[name](lr_max=lr_max, **options)
