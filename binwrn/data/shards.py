"""Which images each process takes, as index lists (batches are slices of one uint8 tensor).

Training: every epoch is one permutation of the training images cut into steps of
`step_batch` images, the last partial step dropped (the paper's floor(50000/125) = 400).
With several processes (DDP) the permutation is the same on all of them and process r of w
takes part r of every step (`torch.tensor_split`: sizes differ by at most one image), so the
processes together train exactly the steps one process would. Test: process r takes the
contiguous part r of the test set, so every test image is evaluated exactly once.

One process keeps what torch's RandomSampler + BatchSampler drew before DDP existed (a
permutation seeded from the global torch generator, which resumed runs restore); several
processes cannot share that generator, so theirs is seeded from (seed, epoch).

A run stopped mid-epoch resumes that epoch exactly: the checkpoint holds the epoch's
permutation seed and how many steps were done (`EpochSteps.position`), and the resumed
epoch takes the same permutation's remaining steps without drawing a new one (a draw would
also move the global generator the augmentation draws from).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

# Purposes of the random streams derived from the run's seed (`stream_seed`).
PERMUTATION, AUGMENTATION, BN_RECOMPUTE = 1, 2, 3


def rank_and_world(trainer) -> tuple[int, int]:
    """(this process's rank, how many processes train) from a data module's `trainer`; (0, 1)
    outside a fit."""
    return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)


def stream_seed(seed: int, purpose: int, *parts: int) -> int:
    """A 63-bit seed for one purpose (and epoch, rank, ...), independent of the others."""
    state = np.random.SeedSequence([seed, purpose, *parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class EpochSteps(Sampler[list[int]]):
    """This process's index lists for one training epoch (see the module docstring)."""

    def __init__(self, n: int, step_batch: int, rank: int = 0, world: int = 1,
                 seed: int | None = None) -> None:
        if world > 1 and seed is None:
            raise ValueError("several processes need a shared seed for their permutation")
        self.n, self.step_batch, self.rank, self.world = n, step_batch, rank, world
        self.seed, self.epoch = seed, 0
        self.epoch_seed: int | None = None  # the permutation's seed of the epoch under way
        self._resume: tuple[int, int] | None = None  # (epoch seed, steps done) to go on from

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch."""
        self.epoch = epoch

    def _draw_seed(self) -> int:
        if self.seed is None:  # exactly RandomSampler's draw, so one-process runs are unchanged
            return int(torch.empty((), dtype=torch.int64).random_().item())
        return stream_seed(self.seed, PERMUTATION, self.epoch)

    def position(self, steps_done: int) -> dict[str, int]:
        """What a checkpoint taken after `steps_done` steps of this epoch needs to resume it."""
        return {"epoch_seed": -1 if self.epoch_seed is None else self.epoch_seed,
                "steps_done": steps_done, "epoch_steps": len(self)}

    def resume_from(self, position: dict[str, int]) -> None:
        """Make the next epoch the rest of the epoch `position` was taken in; a position at an
        epoch's end (or before its first step) changes nothing."""
        if 0 < position["steps_done"] < position["epoch_steps"] == len(self):
            self._resume = (position["epoch_seed"], position["steps_done"])

    @property
    def resuming(self) -> bool:
        """Whether the next epoch is the rest of a checkpointed one."""
        return self._resume is not None

    def __iter__(self) -> Iterator[list[int]]:
        (self.epoch_seed, first), self._resume = self._resume or (self._draw_seed(), 0), None
        generator = torch.Generator()
        generator.manual_seed(self.epoch_seed)
        order = torch.randperm(self.n, generator=generator)
        for step in range(first, len(self)):
            images = order[step * self.step_batch:(step + 1) * self.step_batch]
            yield torch.tensor_split(images, self.world)[self.rank].tolist()

    def __len__(self) -> int:
        return self.n // self.step_batch


def evaluation_shard(n: int, batch_size: int, rank: int = 0, world: int = 1) -> BatchSampler:
    """Process r's contiguous part of n test images, in batches (the last may be short)."""
    part = torch.tensor_split(torch.arange(n), world)[rank].tolist()
    return BatchSampler(part, batch_size, drop_last=False)
