"""The embedded default data set: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 real 8x8 images with 17 grey levels ship inside scikit-learn, so `make demo` runs
offline anywhere. They are fed through the CIFAR pipeline unchanged: grey levels 0-16 are
mapped to 0-255, each pixel becomes a 4x4 block (32x32) and the grey channel is repeated
three times. The split is a fixed stratified 80/20 (1,437 train / 360 test).

The file is read where scikit-learn keeps it, without importing scikit-learn (1.6 s of every
start), and the split's order is scikit-learn's own, written out in `digits_split.py`.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from binwrn.data.arrays import ImageSplit
from binwrn.data.digits_split import TEST_ORDER, TRAIN_ORDER
from binwrn.errors import DataError


def digits_file() -> Path:
    """scikit-learn's digits.csv.gz (per line: 64 pixels of grey level 0-16, then the label),
    found without running scikit-learn's import."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The embedded digits come with scikit-learn, which is not installed: "
                        "run `make install`, or choose another dataset=.")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def read_digits() -> tuple[ImageSplit, ImageSplit]:
    with gzip.open(digits_file(), "rt") as text:
        table = np.loadtxt(text, delimiter=",")
    levels, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    grey = np.rint(levels * (255.0 / 16.0)).astype(np.uint8)
    big = grey.repeat(4, axis=1).repeat(4, axis=2)
    rgb = np.repeat(big[..., None], 3, axis=3)
    train, test = np.asarray(TRAIN_ORDER), np.asarray(TEST_ORDER)
    return (ImageSplit(np.ascontiguousarray(rgb[train]), labels[train]),
            ImageSplit(np.ascontiguousarray(rgb[test]), labels[test]))
