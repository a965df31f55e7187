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
from torch.utils.data import DataLoader, Dataset, Sampler

from binwrn.data.imagenet import FileSplit
from binwrn.data.imagenet_transforms import CropSettings, read_rgb
from binwrn.data.shards import EpochSteps, evaluation_shard, rank_and_world


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


def worker_count(workers: int | str, ranks_on_node: int = 1) -> int:
    """Loader workers of this process (each DDP rank has its own). `auto`: its share of the
    cores it may use: under SLURM the task's own CPUs (--cpus-per-task), elsewhere the
    cores divided between the `ranks_on_node` ranks of this machine."""
    if workers != "auto":
        return int(workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit() and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return max(1, min(cores, int(per_task)))
    return max(1, cores // max(1, ranks_on_node))


def _no_torch_threads(_worker_id: int) -> None:
    # Each worker decodes one image at a time; intra-op threads would only fight the others.
    torch.set_num_threads(1)


class StreamingImageData(pl.LightningDataModule):
    """Train on shuffled full batches (one pass per epoch); test on every val image.

    Under DDP each rank's loader (with its own workers) reads only its part of every step
    and of the val set, as the in-memory path does (data/shards.py): one permutation per
    epoch shared by all ranks, seeded from (`seed`, epoch), cut into steps of `step_batch`
    images, rank r taking part r of each; contiguous parts of the val set. One process keeps
    the loader it always had."""

    def __init__(
        self, train: FileSplit, val: FileSplit, crops: CropSettings, batch_size: int = 256,
        eval_batch_size: int = 500, workers: int = 2,
        layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
        step_batch: int | None = None, seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_set = CroppedImages(train, crops, "train")
        self.test_set = CroppedImages(val, crops, "centre")
        self.multi_crop_set = CroppedImages(val, crops, "multi")
        self.crops, self.batch_size, self.eval_batch_size = crops, batch_size, eval_batch_size
        self.workers, self.layout = workers, layout
        self.step_batch, self.seed = step_batch or batch_size, seed

    def _loader(self, data: Dataset, batch_size: int, training: bool,
                index_lists: Sampler | None = None, persistent: bool = True) -> DataLoader:
        batching = ({"batch_sampler": index_lists} if index_lists is not None else
                    {"batch_size": batch_size, "shuffle": training, "drop_last": training})
        return DataLoader(
            data, **batching,
            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
            # no restart cost per epoch
            persistent_workers=persistent and training and self.workers > 0,
            worker_init_fn=_no_torch_threads if self.workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        if world == 1:
            return self._loader(self.train_set, self.batch_size, training=True)
        steps = EpochSteps(len(self.train_set), self.step_batch, rank, world, self.seed)
        return self._loader(self.train_set, self.batch_size, training=True, index_lists=steps)

    def _evaluation_loader(self, data: Dataset, batch_size: int) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        if world == 1:
            return self._loader(data, batch_size, training=False)
        return self._loader(data, batch_size, training=False,
                            index_lists=evaluation_shard(len(data), batch_size, rank, world))

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.test_set, self.eval_batch_size)

    test_dataloader = val_dataloader

    def multi_crop_dataloader(self) -> DataLoader:
        """Batches of (images, crops, 3, size, size): eval_batch_size crops per batch (under
        DDP this rank's part of the images; the caller adds up the ranks' counts)."""
        images_per_batch = max(1, self.eval_batch_size // self.crops.multi_crop_count)
        return self._evaluation_loader(self.multi_crop_set, images_per_batch)

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
        """Training-mode inputs (with augmentation) for recomputing BN statistics. Under DDP
        every rank draws the same whole batches of `batch_size` (the caller aligns their
        random streams, which seed the shuffle and a fresh set of workers' crops)."""
        _, world = rank_and_world(self.trainer)
        loader = self._loader(self.train_set, self.batch_size, training=True,
                              persistent=world == 1)
        for images, _ in loader:
            yield self.prepare(images.to(device, non_blocking=True))
