"""Find and read a data set by name: official torchvision files (CIFAR pickles, MNIST IDX),
an ImageFolder tree, or the embedded digits. The layout under `root` is detected, so users
only say where the data is."""

from __future__ import annotations

import os
from pathlib import Path

from binwrn.data.arrays import ImageSplit, balanced_subset
from binwrn.data.cifar_pickle import FOLDERS, batches_folder, read_cifar_batches
from binwrn.data.digits import read_digits
from binwrn.data.image_folder import is_image_folder, read_image_folder
from binwrn.data.mnist import mnist_folder, read_mnist
from binwrn.errors import ConfigError, DataError

DATASETS = ("cifar10", "cifar100", "mnist", "digits")


def default_cache_dir() -> Path:
    base = Path.home() / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", base)) / "binwrn"


def _shrink(split: ImageSplit, limit: int | None) -> ImageSplit:
    keep = balanced_subset(split.labels, limit)
    return ImageSplit(split.images[keep], split.labels[keep], split.classes)


def _download(name: str, root: Path) -> None:
    """Fetch the official files with torchvision (which checks their md5)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100,
           "mnist": datasets.MNIST}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as err:  # network and integrity failures surface in many types
        raise DataError(f"Downloading {name} into {root} failed ({err}).") from None


def load_splits(
    name: str,
    root: str | Path | None,
    num_classes: int,
    image_size: int = 32,
    download: bool = False,
    cache_dir: str | Path | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    verify_checksums: bool = True,
) -> tuple[ImageSplit, ImageSplit]:
    """Train and test splits of `name` as uint8 arrays; limits keep balanced subsets.

    Official pickles are unpickled only after their MD5 matched, unless `verify_checksums`
    is off (for pickles written by the user, such as the tests' generated files)."""
    if name not in DATASETS:
        raise ConfigError(f"dataset={name} is unknown: use one of {', '.join(DATASETS)}.")
    if name == "digits":
        train, test = read_digits()
        return _shrink(train, train_limit), _shrink(test, test_limit)

    if not root:
        raise DataError(f"No data.root is set for {name}: set data.root=<folder with the data>.")
    root = Path(root).expanduser()
    if name == "mnist":
        if mnist_folder(root) is None and download:
            _download(name, root)
        train, test = read_mnist(root, verify_checksums)
        return _shrink(train, train_limit), _shrink(test, test_limit)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if is_image_folder(root):
        train = read_image_folder(root, "train", num_classes, image_size, cache, train_limit)
        test = read_image_folder(root, "test", num_classes, image_size, cache, test_limit)
        if train.classes != test.classes:
            raise DataError(
                f"{root}/train and {root}/test name different classes: give both the same "
                "class folders."
            )
        return train, test
    folder = batches_folder(root, name)
    if folder is None and download:
        _download(name, root)
        folder = batches_folder(root, name)
    if folder is None:
        raise DataError(
            f"No {name} data under data.root={root}: expected the official folder "
            f"{root / FOLDERS[name]} or an ImageFolder tree {root}/train/<class>/ and "
            f"{root}/test/<class>/; set data.root to it or pass data.download=true."
        )
    train = read_cifar_batches(folder, name, "train", verify_checksums)
    test = read_cifar_batches(folder, name, "test", verify_checksums)
    if int(max(train.labels.max(), test.labels.max())) >= num_classes:
        raise DataError(f"{folder} has labels beyond the {num_classes} classes of {name}.")
    return _shrink(train, train_limit), _shrink(test, test_limit)
