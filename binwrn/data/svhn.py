"""Reader for SVHN's official cropped-digits files, as torchvision lays them out.

Layout: `<root>/train_32x32.mat`, `<root>/test_32x32.mat` and, optionally,
`<root>/extra_32x32.mat` (http://ufldl.stanford.edu/housenumbers/, "Format 2"). Each is a
MATLAB v5 file holding X, uint8 (32, 32, 3, N), and y, (N, 1) with labels 1-10 where 10 is
the digit 0; like torchvision, label 10 becomes 0, so a label is the digit shown.

Each file's MD5 is checked against the official one (torchvision's table) before it is
parsed. Paper 1 does not say whether its SVHN runs trained on `extra` (531,131 more images
than train's 73,257; spec 1.5.4 and open question 7): it is left out unless asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from binwrn.data.arrays import ImageSplit, stack_parts
from binwrn.data.checksums import check_md5
from binwrn.errors import DataError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
# torchvision.datasets.SVHN.split_list: the MD5 sums of the files the SVHN site serves.
OFFICIAL_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}
LAYOUT = ("the official files train_32x32.mat and test_32x32.mat (and extra_32x32.mat with "
          "dataset.use_extra=true) from http://ufldl.stanford.edu/housenumbers/ directly in it")


def train_splits(use_extra: bool) -> tuple[str, ...]:
    return ("train", "extra") if use_extra else ("train",)


def has_svhn_files(root: Path, use_extra: bool = False) -> bool:
    return all((root / FILES[s]).is_file() for s in (*train_splits(use_extra), "test"))


def _load_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images as an (N, 32, 32, 3) view of the file's X, labels 0-9)."""
    from scipy.io import loadmat  # imported here: only SVHN needs scipy's MATLAB reader
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path, variable_names=["X", "y"])
        x, y = content["X"], np.asarray(content["y"], dtype=np.int64).reshape(-1)
    except (MatReadError, OSError, ValueError, KeyError, TypeError, NotImplementedError) as err:
        raise DataError(f"{path} is not a readable SVHN .mat file ({err}): replace it with the "
                        "official file.") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"{path} does not hold uint8 32x32x3 images with one label each: "
                        "replace it with the official file.")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path} has labels outside SVHN's 1-10: replace it with the official "
                        "file.")
    return x.transpose(3, 0, 1, 2), np.where(y == 10, 0, y)


def read_svhn(root: Path, use_extra: bool = False,
              verify_checksums: bool = True) -> tuple[ImageSplit, ImageSplit]:
    """(train, test) as uint8 (N, 32, 32, 3); train is train_32x32 then, with `use_extra`,
    extra_32x32, in file order."""
    splits = (*train_splits(use_extra), "test")
    missing = [FILES[s] for s in splits if not (root / FILES[s]).is_file()]
    if missing:
        raise DataError(f"{root} lacks {', '.join(missing)}: add the official files there.")
    if verify_checksums:
        for split in splits:
            check_md5(root / FILES[split], OFFICIAL_MD5[FILES[split]])
    images, labels = [], []
    for split in train_splits(use_extra):
        x, y = _load_mat(root / FILES[split])
        images.append(x)
        labels.append(y)
    train = ImageSplit(stack_parts(images), np.concatenate(labels))
    test_images, test_labels = _load_mat(root / FILES["test"])
    return train, ImageSplit(np.ascontiguousarray(test_images), test_labels)
