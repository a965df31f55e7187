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

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch."""
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        generator = torch.Generator()
        if self.seed is None:  # exactly RandomSampler's draw, so one-process runs are unchanged
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        else:
            generator.manual_seed(stream_seed(self.seed, PERMUTATION, self.epoch))
        return generator

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self._generator())
        for step in range(len(self)):
            images = order[step * self.step_batch:(step + 1) * self.step_batch]
            yield torch.tensor_split(images, self.world)[self.rank].tolist()

    def __len__(self) -> int:
        return self.n // self.step_batch


def evaluation_shard(n: int, batch_size: int, rank: int = 0, world: int = 1) -> BatchSampler:
    """Process r's contiguous part of n test images, in batches (the last may be short)."""
    part = torch.tensor_split(torch.arange(n), world)[rank].tolist()
    return BatchSampler(part, batch_size, drop_last=False)
