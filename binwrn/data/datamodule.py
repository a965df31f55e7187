"""Lightning data module over uint8 tensors, augmented a whole batch at a time on the device.

Batches are index slices of one uint8 tensor (no per-image Python work, no worker
processes); they reach the training device as uint8 and are converted and augmented there
(`on_after_batch_transfer`), so on a GPU the CPU only draws indices. Under DDP each process
takes its own part of every step and of the test set (`shards.py`); Lightning's
DistributedSampler is switched off (`use_distributed_sampler=False`), as it would replace the
index-list sampler with one that yields single images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from binwrn.data.arrays import ImageSplit, check_batch_size
from binwrn.data.augment import Augment
from binwrn.data.shards import EpochSteps, evaluation_shard, rank_and_world


def _tensors(split: ImageSplit) -> TensorDataset:
    images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous()
    return TensorDataset(images, torch.from_numpy(split.labels))


def _loader(data: TensorDataset, index_lists: Sampler) -> DataLoader:
    return DataLoader(data, batch_size=None, sampler=index_lists)


class ResumableSteps(DataLoader):
    """The training loader, resumable mid-epoch: Lightning saves `state_dict()` with its loops
    in every checkpoint and hands it to `load_state_dict` before the resumed fit iterates.
    `steps_done()` counts this epoch's steps taken (Lightning's batch progress)."""

    def __init__(self, data: TensorDataset, steps: EpochSteps,
                 steps_done: Callable[[], int]) -> None:
        super().__init__(data, batch_size=None, sampler=steps)
        self.steps, self.steps_done = steps, steps_done

    def state_dict(self) -> dict[str, int]:
        return self.steps.position(self.steps_done())

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps.resume_from(state)

    def __iter__(self):
        if not self.steps.resuming:
            return super().__iter__()
        # Every iterator draws a base seed from the global generator; the interrupted epoch's
        # iterator drew it before the checkpoint, so the resumed one must not draw again.
        with torch.random.fork_rng(devices=[]):
            return super().__iter__()


class DeviceAugmentedData(pl.LightningDataModule):
    """Train on shuffled full batches (the paper's floor(N/125) per epoch); test on all images.

    `batch_size` is the paper's batch (BN statistics are recomputed over batches of it);
    `step_batch` the images of one optimizer step over all processes (default: batch_size);
    `seed` draws the permutation shared by all processes when there are several.
    """

    def __init__(
        self, train: ImageSplit, test: ImageSplit, batch_size: int = 125,
        augment: Augment | None = None, eval_batch_size: int = 500,
        layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
        step_batch: int | None = None, seed: int = 0,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, len(train))
        self.train_set, self.test_set = _tensors(train), _tensors(test)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.step_batch, self.seed = step_batch or batch_size, seed
        self.augment = augment or Augment(flip=False, pad=0)
        self.layout = layout  # e.g. channels-last on the fast path

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        steps = EpochSteps(len(self.train_set), self.step_batch, rank, world,
                           self.seed if world > 1 else None)
        return ResumableSteps(self.train_set, steps, self._steps_done)

    def _steps_done(self) -> int:
        """Steps of this epoch whose update is done (read when a checkpoint is written)."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed \
            if self.trainer else 0

    def val_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        return _loader(self.test_set,
                       evaluation_shard(len(self.test_set), self.eval_batch_size, rank, world))

    test_dataloader = val_dataloader

    def prepare(self, batch, training: bool):
        """uint8 -> float 0-255 on the batch's device, augmented when training."""
        images, labels = batch
        images = images.float()
        return self.layout(self.augment(images) if training else images), labels

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.prepare(batch, training=self.trainer.training)

    def test_batches(self, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's test images and labels on `device`, as evaluation feeds them."""
        for batch in self.val_dataloader():
            yield self.prepare([t.to(device) for t in batch], training=False)

    def augmented_train_batches(self, device: torch.device) -> Iterator[torch.Tensor]:
        """Training-mode inputs (with augmentation) for recomputing BN statistics: whole
        batches of `batch_size` in every process (the caller aligns their random streams)."""
        for batch in _loader(self.train_set, EpochSteps(len(self.train_set), self.batch_size)):
            yield self.prepare([t.to(device) for t in batch], training=True)[0]
