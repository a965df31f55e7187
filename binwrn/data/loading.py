"""Which data set to load and how much of it (`DataSource`), and the test images as testing
feeds them to a model, a chunk at a time. Plain values: the configuration package builds a
DataSource from `dataset.*` and `data.*`; training and the exporters load through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from binwrn.data.arrays import ImageSplit
from binwrn.data.imagenet import FileSplit, list_imagenet
from binwrn.data.sources import load_splits

if TYPE_CHECKING:  # imported where used: torchvision costs CIFAR runs seconds at startup
    from binwrn.data.imagenet_transforms import CropSettings

# Images decoded and run at once by eval_batches: 500 ImageNet crops at 224 pixels are 300 MB
# of float32, where a whole 50,000-image val set would be 30 GB.
EVAL_CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """A data set's files and the subset of them a run uses."""

    name: str
    root: str | Path | None
    num_classes: int
    image_size: int = 32
    download: bool = False
    cache_dir: str | Path | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    verify_checksums: bool = True
    use_extra: bool = False  # SVHN only
    streaming: bool = False  # ImageNet: files listed here, decoded per batch


def load_data(source: DataSource) -> tuple[ImageSplit | FileSplit, ImageSplit | FileSplit]:
    """(train, test) of `source`: uint8 arrays, or the file lists of a streaming data set."""
    s = source
    if s.streaming:
        return list_imagenet(s.root, s.num_classes, s.train_limit, s.test_limit,
                             extract=s.download)
    return load_splits(s.name, s.root, s.num_classes, s.image_size, download=s.download,
                       cache_dir=s.cache_dir, train_limit=s.train_limit,
                       test_limit=s.test_limit, verify_checksums=s.verify_checksums,
                       use_extra=s.use_extra)


def eval_batches(test: ImageSplit | FileSplit, crops: CropSettings | None,
                 size: int = EVAL_CHUNK) -> Iterator[np.ndarray]:
    """float32 NCHW raw 0-255 pixels of a test split as testing feeds them to the model, `size`
    images at a time: in-memory images as they are, ImageNet files as their single centre crops
    (`crops`, decoded a chunk at a time)."""
    if not isinstance(test, FileSplit):
        images = test.model_inputs()
        yield from (images[i:i + size] for i in range(0, len(images), size))
        return
    from binwrn.data.imagenet_transforms import read_rgb

    for start in range(0, len(test), size):
        yield np.stack([crops.centre_crop_of(read_rgb(test.path(i), crops.decoder)).numpy()
                        for i in range(start, min(start + size, len(test)))]).astype(np.float32)
