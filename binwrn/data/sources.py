"""Find and read a data set by name: the official release files (CIFAR and ImageNet32
pickles, SVHN .mat files, MNIST IDX files), an ImageFolder tree, or the embedded digits.
The layout under `root` is detected, so users only say where the data is."""

from __future__ import annotations

import os
from pathlib import Path

from binwrn.data.arrays import ImageSplit, balanced_subset
from binwrn.data.cifar_pickle import FOLDERS, batches_folder, read_cifar_batches
from binwrn.data.digits import read_digits
from binwrn.data.file_lock import exclusive
from binwrn.data.image_folder import is_image_folder, read_image_folder
from binwrn.data.imagenet32 import LAYOUT as IMAGENET32_LAYOUT
from binwrn.data.imagenet32 import has_imagenet32_files, read_imagenet32
from binwrn.data.mnist import mnist_folder, read_mnist
from binwrn.data.svhn import LAYOUT as SVHN_LAYOUT
from binwrn.data.svhn import has_svhn_files, read_svhn, train_splits
from binwrn.errors import ConfigError, DataError

DATASETS = ("cifar10", "cifar100", "svhn", "imagenet32", "mnist", "digits")


def default_cache_dir() -> Path:
    base = Path.home() / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", base)) / "binwrn"


def _shrink(split: ImageSplit, limit: int | None) -> ImageSplit:
    if limit is None or limit >= len(split):
        return split  # no copy: ImageNet32's training set alone is 3.9 GB
    keep = balanced_subset(split.labels, limit)
    return ImageSplit(split.images[keep], split.labels[keep], split.classes)


def _download(name: str, root: Path, use_extra: bool = False) -> None:
    """Fetch the official files with torchvision (which checks their md5); ImageNet32 has none
    to fetch (check_present says so first). One process of a machine at a time (DDP ranks):
    torchvision skips the files a rank before it fetched."""
    with exclusive(root / ".binwrn-download.lock"):
        _fetch(name, root, use_extra)


def _fetch(name: str, root: Path, use_extra: bool) -> None:
    from torchvision import datasets

    try:
        if name == "svhn":
            for split in (*train_splits(use_extra), "test"):
                datasets.SVHN(str(root), split=split, download=True)
            return
        cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100,
               "mnist": datasets.MNIST}[name]
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as err:  # network and integrity failures surface in many types
        raise DataError(f"Downloading {name} into {root} failed ({err}).") from None


def _official_layout(name: str, root: Path) -> str:
    """Where the official files of `name` go under `root`, for the missing-data sentence."""
    if name == "svhn":
        return SVHN_LAYOUT
    if name == "imagenet32":
        return IMAGENET32_LAYOUT
    return f"the official folder {root / FOLDERS[name]}"


def _has_official_files(name: str, root: Path, use_extra: bool) -> bool:
    if name == "svhn":
        return has_svhn_files(root, use_extra)
    if name == "imagenet32":
        return has_imagenet32_files(root)
    return batches_folder(root, name) is not None


def _read_official(name: str, root: Path, use_extra: bool,
                   verify_checksums: bool) -> tuple[ImageSplit, ImageSplit]:
    if name == "svhn":
        return read_svhn(root, use_extra, verify_checksums)
    if name == "imagenet32":
        return read_imagenet32(root)
    folder = batches_folder(root, name)
    return (read_cifar_batches(folder, name, "train", verify_checksums),
            read_cifar_batches(folder, name, "test", verify_checksums))


def check_present(name: str, root: str | Path | None, download: bool = False,
                  use_extra: bool = False, streaming: bool = False) -> None:
    """Raise the DataError that says where `name`'s files should be, when they are not under
    `root` and no download was asked for. Reads no file and imports no torch, so
    `binwrn-run` looks here before it loads anything (and `load_splits` does too)."""
    if name == "digits":
        return
    if not root:
        raise DataError(f"No data.root is set for {name}: set data.root=<folder with the data>.")
    root = Path(root).expanduser()
    if streaming:  # ImageNet's JPEG folders (data.download extracts its tarballs)
        from binwrn.data.imagenet import check_folders

        check_folders(root, extract=download)
        return
    if name == "mnist":
        if mnist_folder(root) is None and not download:
            read_mnist(root)  # raises the sentence naming the missing files, reading none
        return
    if is_image_folder(root) or _has_official_files(name, root, use_extra):
        return
    if download and name == "imagenet32":
        raise DataError("ImageNet32 cannot be downloaded for you (image-net.org asks for a "
                        f"login): put {IMAGENET32_LAYOUT} under data.root={root}.")
    if download:
        return
    fetch = "" if name == "imagenet32" else " or pass data.download=true"
    raise DataError(
        f"No {name} data under data.root={root}: expected {_official_layout(name, root)}, "
        f"or an ImageFolder tree {root}/train/<class>/ and {root}/test/<class>/; set "
        f"data.root to it{fetch}."
    )


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
    use_extra: bool = False,
) -> tuple[ImageSplit, ImageSplit]:
    """Train and test splits of `name` as uint8 arrays; limits keep balanced subsets.

    Official files whose release publishes MD5 sums (CIFAR, SVHN) are parsed only after
    their MD5 matched, unless `verify_checksums` is off (for files written by the user, such
    as the tests' generated ones). `use_extra`: SVHN trains on train + extra."""
    if name not in DATASETS:
        raise ConfigError(f"dataset={name} is unknown: use one of {', '.join(DATASETS)}.")
    if name == "digits":
        train, test = read_digits()
        return _shrink(train, train_limit), _shrink(test, test_limit)

    check_present(name, root, download, use_extra)
    root = Path(root).expanduser()
    if name == "mnist":  # grey images, so never an (RGB) ImageFolder tree
        if mnist_folder(root) is None and download:
            _download(name, root)
        train, test = read_mnist(root, verify_checksums)  # names any missing file and its place
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
    if not _has_official_files(name, root, use_extra) and download:
        _download(name, root, use_extra)
    check_present(name, root, False, use_extra)  # also after a download that fetched nothing
    train, test = _read_official(name, root, use_extra, verify_checksums)
    if int(max(train.labels.max(), test.labels.max())) >= num_classes:
        raise DataError(f"{root} has labels beyond the {num_classes} classes of {name}.")
    return _shrink(train, train_limit), _shrink(test, test_limit)
