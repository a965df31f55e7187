"""Reader for the official CIFAR "python version" batches, as torchvision lays them out.

The batches are pickles. A pickle can run code when loaded, so each file's MD5 is checked
against the official one before anything is unpickled, and the files are then read with an
unpickler that only builds the containers and numpy arrays the official files hold.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

from binwrn.data.arrays import ImageSplit
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

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def batches_folder(root: Path, dataset: str) -> Path | None:
    """The folder holding the batches: `root/<official name>` or `root` itself."""
    for candidate in (root / FOLDERS[dataset], root):
        if all((candidate / f).is_file() for f in FILES[dataset]["test"]):
            return candidate
    return None


def _load_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            entry = _ArrayOnlyUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path} is not a readable CIFAR batch ({err}): replace it with the official file."
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{path} does not hold 32x32x3 images with one label each.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_official_md5(folder: Path, dataset: str, names: list[str]) -> None:
    """Refuse any file whose MD5 is not the official one: truncated, altered or foreign."""
    for name in names:
        found = _md5(folder / name)
        if found != OFFICIAL_MD5[dataset][name]:
            raise DataError(
                f"{folder / name} has MD5 {found}, not the official "
                f"{OFFICIAL_MD5[dataset][name]} (truncated or altered): replace it with the "
                "official file, or set data.verify_checksums=false for files you made yourself."
            )


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
