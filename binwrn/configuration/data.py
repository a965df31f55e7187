"""The data a config names: its source, crops, augmentation and held-out split."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from binwrn.data import Augment, ImageSplit
from binwrn.data.imagenet import FileSplit
from binwrn.data.loading import DataSource
from binwrn.data.validation import holdout_split
from binwrn.errors import ConfigError

if TYPE_CHECKING:  # imported where used: torchvision costs CIFAR runs seconds at startup
    from binwrn.data.imagenet_transforms import CropSettings


def data_source(cfg: DictConfig) -> DataSource:
    """`dataset.*` and `data.*` as what to load; keys absent in older runs' configs keep
    their defaults."""
    d, ds = cfg.data, cfg.dataset
    return DataSource(name=ds.name, root=d.root, num_classes=ds.num_classes,
                      image_size=ds.image_size, download=d.download, cache_dir=d.cache_dir,
                      train_limit=d.train_limit, test_limit=d.test_limit,
                      verify_checksums=d.get("verify_checksums", True),
                      use_extra=ds.get("use_extra", False),
                      streaming=ds.get("streaming", False))


def build_augment(cfg: DictConfig) -> Augment:
    d = cfg.data
    return Augment(flip=d.flip, pad=d.pad, pad_fill=d.pad_fill, cutout=d.cutout)


def build_crops(cfg: DictConfig) -> CropSettings | None:
    """How a streaming data set (ImageNet) cuts its crops; None for in-memory data sets."""
    ds = cfg.dataset
    if not ds.get("streaming", False):
        return None
    from binwrn.data.imagenet_transforms import CropSettings

    crops = CropSettings(
        size=ds.image_size, train_crop=ds.train_crop, scale_range=tuple(ds.scale_range),
        area_range=tuple(ds.area_range), aspect_range=tuple(ds.aspect_range),
        flip=cfg.data.flip, eval_resize=ds.eval_resize,
        multi_crop_scales=tuple(ds.multi_crop_scales),
        multi_crop_positions=ds.multi_crop_positions, decoder=ds.decoder)
    if ds.multi_crop not in (0, crops.multi_crop_count):
        raise ConfigError(f"dataset.multi_crop={ds.multi_crop} is not allowed: use 0 (single "
                          f"centre crop only) or {crops.multi_crop_count} (5 crops at each of "
                          "the dataset.multi_crop_scales).")
    if ds.workers != "auto" and not (isinstance(ds.workers, int) and ds.workers >= 0):
        raise ConfigError(f"dataset.workers={ds.workers} is not allowed: use auto or a whole "
                          "number >= 0 of loader processes.")
    return crops


def split_validation(cfg: DictConfig, train: ImageSplit | FileSplit
                     ) -> tuple[ImageSplit | FileSplit, ImageSplit | None]:
    """(the images to train on, the held-out validation split or None): data.val_size."""
    count = cfg.data.get("val_size", 0)  # absent in older runs' configs
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"data.val_size={count} is not allowed: use a whole number >= 0 "
                          "(0: no validation split).")
    if count == 0:
        return train, None
    if isinstance(train, FileSplit):
        raise ConfigError(f"data.val_size={count} holds out images of in-memory data sets only; "
                          f"{cfg.dataset.name} streams its files: leave it at 0.")
    return holdout_split(train, count, cfg.dataset.get("val_split", "balanced"))
