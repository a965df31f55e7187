"""The data a config names: its source, crops, augmentation and held-out split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from binwrn.data import Augment, ImageSplit
from binwrn.data.imagenet import FileSplit
from binwrn.data.loading import DataSource
from binwrn.data.validation import (
    OFFICIAL_SPLIT_FILE,
    holdout_split,
    indexed_holdout,
    read_official_split,
)
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


def _official_split(cfg: DictConfig, train: ImageSplit, count: int):
    """Paper 3's CIFAR-10 split file's validation indices, or why the balanced draw stands in
    (data/validation.py): the indices hold only for the official batches, read whole."""
    from binwrn.data.cifar_pickle import batches_folder
    from binwrn.data.image_folder import is_image_folder

    root = Path(cfg.data.root).expanduser() if cfg.data.root else None
    folder = batches_folder(root, "cifar10") if root and cfg.dataset.name == "cifar10" else None
    if folder is None or is_image_folder(root):
        return f"{cfg.dataset.name} is not read from CIFAR-10's official batches"
    if cfg.data.train_limit is not None:
        return f"data.train_limit={cfg.data.train_limit} renumbers the images"
    given = cfg.dataset.get("val_split_file") or OFFICIAL_SPLIT_FILE
    path = Path(given).expanduser()
    if not path.is_absolute():  # beside the batches, or in data.root
        path = next((p for p in (folder / path, root / path) if p.is_file()), root / path)
    return read_official_split(path, len(train), count)


def split_validation(cfg: DictConfig, train: ImageSplit | FileSplit
                     ) -> tuple[ImageSplit | FileSplit, ImageSplit | None, str | None]:
    """(the images to train on, the held-out validation split or None, how it was held out:
    the rule, and for an official split that could not be used, the stand-in and why)."""
    count = cfg.data.get("val_size", 0)  # absent in older runs' configs
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"data.val_size={count} is not allowed: use a whole number >= 0 "
                          "(0: no validation split).")
    if count == 0:
        return train, None, None
    if isinstance(train, FileSplit):
        raise ConfigError(f"data.val_size={count} holds out images of in-memory data sets only; "
                          f"{cfg.dataset.name} streams its files: leave it at 0.")
    rule = cfg.dataset.get("val_split", "balanced")
    if rule != "official":
        return (*holdout_split(train, count, rule), rule)
    held = _official_split(cfg, train, count)
    if isinstance(held, str):
        return (*holdout_split(train, count, "balanced"), f"balanced, not official: {held}")
    return (*indexed_holdout(train, held), "official")


def held_out_warning(held_out: str | None) -> str | None:
    """Said once at start where paper 3's official split was asked for and could not be used."""
    if held_out is None or not held_out.startswith("balanced, not official"):
        return None
    return (f"dataset.val_split=official: {held_out.split(': ', 1)[1]}, so the validation "
            "images are a class-balanced draw (param data.val_split=balanced)")
