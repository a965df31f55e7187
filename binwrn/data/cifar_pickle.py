"""Reader for the official CIFAR "python version" batches, as torchvision lays them out.

The batches are pickles. A pickle can run code when loaded, so each file's MD5 is checked
against the official one before anything is unpickled, and the files are then read with an
unpickler that only builds the containers and numpy arrays the official files hold
(`binwrn.data.array_pickle`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from binwrn.data.array_pickle import load_planar_batch
from binwrn.data.arrays import ImageSplit
from binwrn.data.checksums import check_md5
from binwrn.errors import DataError

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}
LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
# The MD5 sums published with the official archives (the same table torchvision checks).
OFFICIAL_MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    },
}


def batches_folder(root: Path, dataset: str) -> Path | None:
    """The folder holding the batches: `root/<official name>` or `root` itself."""
    for candidate in (root / FOLDERS[dataset], root):
        if all((candidate / f).is_file() for f in FILES[dataset]["test"]):
            return candidate
    return None


def _load_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = load_planar_batch(path, label_key, "CIFAR")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def check_official_md5(folder: Path, dataset: str, names: list[str]) -> None:
    """Refuse any file whose MD5 is not the official one: truncated, altered or foreign."""
    for name in names:
        check_md5(folder / name, OFFICIAL_MD5[dataset][name])


def read_cifar_batches(
    folder: Path, dataset: str, split: str, verify_checksums: bool = True
) -> ImageSplit:
    """Concatenate the official batches of one split into uint8 (N, 32, 32, 3) images."""
    missing = [n for n in FILES[dataset][split] if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}: add the official files.")
    if verify_checksums:
        check_official_md5(folder, dataset, FILES[dataset][split])
    parts = [_load_batch(folder / name, LABEL_KEY[dataset]) for name in FILES[dataset][split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageSplit(np.ascontiguousarray(images), labels)
