"""Data sets as uint8 arrays and device-side augmentation. Nothing here reads a config."""

from binwrn.data.arrays import ImageSplit
from binwrn.data.augment import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.data.sources import DATASETS, load_splits

__all__ = ["DATASETS", "Augment", "DeviceAugmentedData", "ImageSplit", "load_splits"]
