"""Images held as uint8 arrays, the one form every reader produces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from binwrn.errors import ConfigError


@dataclass(frozen=True)
class ImageSplit:
    """uint8 images (N, H, W, C) with int64 labels; pixels stay raw 0-255 (spec 1.5.1)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = ()  # class names where the source has them

    def __len__(self) -> int:
        return len(self.labels)

    def model_inputs(self) -> np.ndarray:
        """float32 NCHW with raw 0-255 pixels: what the model (and the exported files) take."""
        return np.ascontiguousarray(self.images.transpose(0, 3, 1, 2), dtype=np.float32)


def balanced_subset(labels: np.ndarray, count: int | None) -> np.ndarray:
    """Indices of `count` items spread evenly over classes, in their original order.

    Used to shrink a data set for smoke runs and tests while keeping every class present.
    """
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    classes = np.unique(labels)
    per_class = -(-count // len(classes))
    picked = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])
    return np.sort(picked)[:count] if len(picked) > count else np.sort(picked)


def check_batch_size(batch_size: int, train_images: int) -> None:
    """Training drops the last partial batch (BN needs 2+ images), so a batch must fit."""
    if not 1 < batch_size <= train_images:
        raise ConfigError(
            f"data.batch_size={batch_size} does not fit the {train_images} training images: "
            f"use a value from 2 to {train_images}."
        )


def stack_parts(parts: list[np.ndarray]) -> np.ndarray:
    """One C-contiguous array of the parts in order (same trailing shape), emptying the list.

    np.concatenate would hold every part and the result at once: twice ImageNet32's 3.9 GB.
    Copying part by part into one array and dropping each part once copied holds about the
    result plus one part, since np.empty's pages are committed only as they are written.
    """
    total = sum(len(part) for part in parts)
    out = np.empty((total, *parts[0].shape[1:]), dtype=parts[0].dtype)
    start = 0
    while parts:
        part = parts.pop(0)
        out[start : start + len(part)] = part
        start += len(part)
        del part
    return out
