"""Lightning data module over uint8 tensors, augmented a whole batch at a time on the device.

Batches are index slices of one uint8 tensor (no per-image Python work, no worker
processes); they reach the training device as uint8 and are converted and augmented there
(`on_after_batch_transfer`), so on a GPU the CPU only draws indices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from binwrn.data.arrays import ImageSplit, check_batch_size
from binwrn.data.augment import Augment


def _tensors(split: ImageSplit) -> TensorDataset:
    images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous()
    return TensorDataset(images, torch.from_numpy(split.labels))


def _batches(data: TensorDataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
    sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
    return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last))


class DeviceAugmentedData(pl.LightningDataModule):
    """Train on shuffled full batches (the paper's floor(N/125) per epoch); test on all images."""

    def __init__(
        self, train: ImageSplit, test: ImageSplit, batch_size: int = 125,
        augment: Augment | None = None, eval_batch_size: int = 500,
        layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
    ) -> None:
        super().__init__()
        check_batch_size(batch_size, len(train))
        self.train_set, self.test_set = _tensors(train), _tensors(test)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment = augment or Augment(flip=False, pad=0)
        self.layout = layout  # e.g. channels-last on the fast path

    def train_dataloader(self) -> DataLoader:
        return _batches(self.train_set, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return _batches(self.test_set, self.eval_batch_size, shuffle=False, drop_last=False)

    test_dataloader = val_dataloader

    def prepare(self, batch, training: bool):
        """uint8 -> float 0-255 on the batch's device, augmented when training."""
        images, labels = batch
        images = images.float()
        return self.layout(self.augment(images) if training else images), labels

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.prepare(batch, training=self.trainer.training)

    def augmented_train_batches(self, device: torch.device) -> Iterator[torch.Tensor]:
        """Training-mode inputs (with augmentation) for recomputing BN statistics."""
        for batch in self.train_dataloader():
            yield self.prepare([t.to(device) for t in batch], training=True)[0]
