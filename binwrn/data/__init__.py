"""Data sets as uint8 arrays and device-side augmentation. Nothing here reads a config.

The Lightning data module lives in `binwrn.data.datamodule` and is not imported here, so
reading and checking data does not pay for importing Lightning; `Augment` (torch) loads on
first use, so finding and checking data files (`sources`) does not pay for torch either.
"""

from binwrn.data.arrays import ImageSplit
from binwrn.data.sources import DATASETS, load_splits

__all__ = ["DATASETS", "Augment", "ImageSplit", "load_splits"]


def __getattr__(name: str):
    if name == "Augment":
        from binwrn.data.augment import Augment

        return Augment
    raise AttributeError(f"module 'binwrn.data' has no attribute {name!r}")
