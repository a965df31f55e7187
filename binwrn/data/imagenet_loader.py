"""Lightning data module that streams ImageNet JPEGs through DataLoader worker processes.

The CIFAR path keeps a whole data set on the device as uint8 (binwrn.data.datamodule);
ImageNet's 1.28M JPEGs (~140 GB) cannot work that way. Here each worker decodes and crops
images (binwrn.data.imagenet_transforms) and collates uint8 batches; they are pinned, sent
to the device as uint8 (a quarter of float32's bytes) and converted to float 0-255 there,
as on the CIFAR path. Decoding is the CPU's whole job, so `workers` should be as many as
the cores that can be spared (docs/imagenet-loader.md measures one core's rate).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from binwrn.data.imagenet import FileSplit
from binwrn.data.imagenet_transforms import CropSettings, read_rgb


class CroppedImages(Dataset):
    """(uint8 crops, label) per image; `view` is "train", "centre" or "multi"."""

    def __init__(self, files: FileSplit, crops: CropSettings, view: str) -> None:
        self.files, self.crops, self.view = files, crops, view

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = read_rgb(self.files.path(index), self.crops.decoder)
        if self.view == "train":
            crop = self.crops.train_crop_of(image)
        elif self.view == "centre":
            crop = self.crops.centre_crop_of(image)
        else:
            crop = self.crops.multi_crops_of(image, seed=index)
        return crop, int(self.files.labels[index])


def worker_count(workers: int | str) -> int:
    """`auto`: every core this process may use (a GPU job should leave it the node's cores)."""
    if workers == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(workers)


def _no_torch_threads(_worker_id: int) -> None:
    # Each worker decodes one image at a time; intra-op threads would only fight the others.
    torch.set_num_threads(1)


class StreamingImageData(pl.LightningDataModule):
    """Train on shuffled full batches (one pass per epoch); test on every val image."""

    def __init__(
        self, train: FileSplit, val: FileSplit, crops: CropSettings, batch_size: int = 256,
        eval_batch_size: int = 500, workers: int = 2,
        layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
    ) -> None:
        super().__init__()
        self.train_set = CroppedImages(train, crops, "train")
        self.test_set = CroppedImages(val, crops, "centre")
        self.multi_crop_set = CroppedImages(val, crops, "multi")
        self.crops, self.batch_size, self.eval_batch_size = crops, batch_size, eval_batch_size
        self.workers, self.layout = workers, layout

    def _loader(self, data: Dataset, batch_size: int, training: bool) -> DataLoader:
        return DataLoader(
            data, batch_size=batch_size, shuffle=training, drop_last=training,
            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
            persistent_workers=training and self.workers > 0,  # no restart cost per epoch
            worker_init_fn=_no_torch_threads if self.workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, training=False)

    test_dataloader = val_dataloader

    def multi_crop_dataloader(self) -> DataLoader:
        """Batches of (images, crops, 3, size, size): eval_batch_size crops per batch."""
        images_per_batch = max(1, self.eval_batch_size // self.crops.multi_crop_count)
        return self._loader(self.multi_crop_set, images_per_batch, training=False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float 0-255 on the batch's device (the input BN normalises)."""
        return self.layout(images.float())

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return self.prepare(images), labels

    def test_batches(self, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The val images' centre crops and labels on `device`, as evaluation feeds them."""
        for images, labels in self.val_dataloader():
            yield self.prepare(images.to(device, non_blocking=True)), labels.to(device)

    def augmented_train_batches(self, device: torch.device) -> Iterator[torch.Tensor]:
        """Training-mode inputs (with augmentation) for recomputing BN statistics."""
        for images, _ in self.train_dataloader():
            yield self.prepare(images.to(device, non_blocking=True))
