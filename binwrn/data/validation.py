"""A validation split held out of the training images (paper 3, spec 3.5).

Paper 3 holds out 5,000 training images for all its runs, final ones included: CIFAR-10
trains on 45k (a fixed random split, `cifar10_split0613.json` in [IT]) and MNIST on the first
55k, validating on the last 5k. Its sensitivity pre-training (spec 3.6) ranks layers by
accuracy on that split. Rules here:
- "last": the last `count` images in file order, as paper 3 does for MNIST;
- "balanced": an equal number per class drawn with a fixed seed;
- "official": paper 3's own CIFAR-10 split, `cifar10_split0613.json` from [IT] (keys `train`
  and `validation`, indices into the 50,000 images of the official python-version batches in
  file order). It applies only to those files, read whole: an ImageFolder tree does not keep
  their order and a train_limit subset renumbers them, so there (or without the JSON) the
  class-balanced draw stands in, and the run says so (configuration/data.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from binwrn.data.arrays import ImageSplit
from binwrn.errors import ConfigError

RULES = ("balanced", "last", "official")
OFFICIAL_SPLIT_FILE = "cifar10_split0613.json"  # [IT]'s, spec 3.5
SPLIT_SEED = 0  # one split for every run, whatever its seed (paper 3 uses one for all)


def _part(split: ImageSplit, keep: np.ndarray) -> ImageSplit:
    return ImageSplit(split.images[keep], split.labels[keep], split.classes)


def holdout_split(train: ImageSplit, count: int, rule: str = "balanced",
                  seed: int = SPLIT_SEED) -> tuple[ImageSplit, ImageSplit]:
    """(the images left to train on, the `count` held-out validation images)."""
    if rule not in RULES or rule == "official":  # official: read_official_split
        raise ConfigError(f"dataset.val_split={rule} is not supported: use one of {RULES}.")
    classes = np.unique(train.labels)
    balanced = rule == "balanced"
    if not 0 < count < len(train) or (balanced and count % len(classes)):
        need = f"a multiple of {len(classes)} (the classes) " if balanced else ""
        raise ConfigError(f"data.val_size={count} does not split the {len(train)} training "
                          f"images: use {need}below {len(train)}.")
    mask = np.zeros(len(train), dtype=bool)
    if balanced:
        rng = np.random.default_rng(seed)
        per_class = count // len(classes)
        held = np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:per_class]
                               for c in classes])
        if len(held) < count:
            raise ConfigError(f"data.val_size={count} needs {per_class} images of every "
                              "class; some class has fewer: lower it.")
        mask[held] = True
    else:
        mask[len(train) - count:] = True
    return _part(train, ~mask), _part(train, mask)


def read_official_split(path: Path, total: int, count: int) -> np.ndarray | str:
    """The validation indices of paper 3's split file, or why they cannot be used here."""
    try:
        record = json.loads(path.read_text())
        train, held = (np.asarray(record[k], dtype=np.int64) for k in ("train", "validation"))
    except FileNotFoundError:
        return f"no {path.name} in {path.parent}"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{path} is not a split file with train and validation lists ({err})"
    everything = np.concatenate([train, held])
    if len(everything) != total or not np.array_equal(np.sort(everything), np.arange(total)):
        return (f"{path.name} does not split {total:,} images into train and validation once "
                "each")
    if len(held) != count:
        return f"data.val_size={count} is not the {len(held):,} images of {path.name}"
    return held


def indexed_holdout(train: ImageSplit, held: np.ndarray) -> tuple[ImageSplit, ImageSplit]:
    """(the images left to train on, the images at `held`), both in file order."""
    mask = np.zeros(len(train), dtype=bool)
    mask[held] = True
    return _part(train, ~mask), _part(train, mask)
