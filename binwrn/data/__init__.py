"""Data sets as uint8 arrays and device-side augmentation. Nothing here reads a config.

The Lightning data module lives in `binwrn.data.datamodule` and is not imported here, so
reading and checking data does not pay for importing Lightning.
"""

from binwrn.data.arrays import ImageSplit
from binwrn.data.augment import Augment
from binwrn.data.sources import DATASETS, load_splits

__all__ = ["DATASETS", "Augment", "ImageSplit", "load_splits"]
