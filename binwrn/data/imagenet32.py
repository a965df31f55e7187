"""Reader for ImageNet32 (Chrabaszcz, Loshchilov and Hutter 2017, "A Downsampled Variant of
ImageNet as an Alternative to the CIFAR datasets") in its official pickled batches.

Layout, as Imagenet32_train.zip and Imagenet32_val.zip (https://image-net.org/download-images,
registration needed) unpack:
    <root>/Imagenet32_train/train_data_batch_1 ... train_data_batch_10   1,281,167 images
    <root>/Imagenet32_val/val_data                                          50,000 images
or a split's files directly in <root>. Each file is a Python 3 pickle of a dict with 'data',
uint8 (N, 3072), each row one image as its 1024 red, then green, then blue values (CIFAR's
layout), and 'labels', N ints 1-1000 (stored 1-based; read as 0-999). Training batches also
hold 'mean', the mean training image, which is not used: paper 1 feeds raw pixels to a
learned input BN (spec 1.5.1). The validation set is what paper 1 reports as test error.

No checksums are published for these files (not on the download page, in the dataset paper
or in its scripts, PatrykChrabaszcz/Imagenet32_Scripts), so none can be checked; the files
are only ever read with the array-only unpickler.

Memory: the training set is 3.9 GB of uint8. The batches are copied once into one planar
array (N, 3, 32, 32) and the images are an (N, 32, 32, 3) view of it; the data module's
permute back to NCHW is then already contiguous, so no further copy is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from binwrn.data.array_pickle import load_planar_batch
from binwrn.data.arrays import ImageSplit, stack_parts
from binwrn.errors import DataError

FOLDERS = {"train": "Imagenet32_train", "test": "Imagenet32_val"}
FILES = {"train": [f"train_data_batch_{i}" for i in range(1, 11)], "test": ["val_data"]}
NUM_CLASSES = 1000
LAYOUT = ("Imagenet32_train/train_data_batch_1 ... train_data_batch_10 and "
          "Imagenet32_val/val_data in it, as the official Imagenet32_train.zip and "
          "Imagenet32_val.zip from https://image-net.org/download-images unpack")


def split_folder(root: Path, split: str) -> Path | None:
    """`root/Imagenet32_train` (or `_val`) or `root` itself, whichever holds the split."""
    for candidate in (root / FOLDERS[split], root):
        if all((candidate / name).is_file() for name in FILES[split]):
            return candidate
    return None


def has_imagenet32_files(root: Path) -> bool:
    """Whether any official file is there: then the reader names whichever are missing."""
    return any((folder / name).is_file() for split, names in FILES.items()
               for folder in (root / FOLDERS[split], root) for name in names)


def _missing(root: Path, split: str) -> tuple[Path, list[str]]:
    """The candidate folder holding most of the split's files, and the ones it lacks."""
    def lacking(folder: Path) -> list[str]:
        return [name for name in FILES[split] if not (folder / name).is_file()]

    return min(((f, lacking(f)) for f in (root / FOLDERS[split], root)),
               key=lambda found: len(found[1]))


def read_imagenet32_split(root: Path, split: str) -> ImageSplit:
    """One split (train, or test = the official validation set) as uint8 (N, 32, 32, 3)."""
    folder = split_folder(root, split)
    if folder is None:
        nearest, missing = _missing(root, split)
        raise DataError(f"{nearest} lacks {', '.join(missing)}: add the official files there.")
    rows, labels = [], []
    for name in FILES[split]:
        data, stored = load_planar_batch(folder / name, "labels", "ImageNet32")
        if len(stored) and (stored.min() < 1 or stored.max() > NUM_CLASSES):
            raise DataError(f"{folder / name} has labels outside ImageNet32's 1-{NUM_CLASSES}: "
                            "replace it with the official file.")
        rows.append(data)
        labels.append(stored - 1)
    planar = stack_parts(rows).reshape(-1, 3, 32, 32)
    return ImageSplit(planar.transpose(0, 2, 3, 1), np.concatenate(labels))


def read_imagenet32(root: Path) -> tuple[ImageSplit, ImageSplit]:
    return read_imagenet32_split(root, "train"), read_imagenet32_split(root, "test")
