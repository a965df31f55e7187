"""The embedded default data set: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 real 8x8 images with 17 grey levels ship inside scikit-learn, so `make demo` runs
offline anywhere. They are fed through the CIFAR pipeline unchanged: grey levels 0-16 are
mapped to 0-255, each pixel becomes a 4x4 block (32x32) and the grey channel is repeated
three times. The split is a fixed stratified 80/20 (1,437 train / 360 test).
"""

from __future__ import annotations

import numpy as np

from binwrn.data.arrays import ImageSplit

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def read_digits() -> tuple[ImageSplit, ImageSplit]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    grey = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    big = grey.repeat(4, axis=1).repeat(4, axis=2)
    rgb = np.repeat(big[..., None], 3, axis=3)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        rgb, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    train = ImageSplit(np.ascontiguousarray(x_tr), y_tr)
    return train, ImageSplit(np.ascontiguousarray(x_te), y_te)
