"""The paper's augmentation, applied to whole batches on the training device.

Spec 1.5.3: horizontal flip (p=0.5); pad 4 px on every side with uniform random integers
0-255 (independent per pixel and channel), then a random 32x32 crop; optionally one 18x18
cutout patch filled with random integers, whose top-left corner is uniform over every
position where at least one patch pixel lies in the image (so it is clipped at borders).
Order: flip, pad+crop, cutout ([M], [K]).

Crop offsets are independent uniform draws from {0..8}; [M] draws two *distinct* values
(a MATLAB randperm quirk) and [K] favours zero shifts; neither is reproduced.
`pad_fill` = random (paper) | zero ([K] without cutout) | reflect ([SZ]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from binwrn.data.rules import PAD_FILLS
from binwrn.errors import ConfigError


def _random_pixels(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 256, shape, device=like.device).to(like.dtype)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def pad_and_crop(x: torch.Tensor, pad: int, fill: str) -> torch.Tensor:
    b, c, h, w = x.shape
    if fill == "reflect":
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    else:
        padded = (_random_pixels((b, c, h + 2 * pad, w + 2 * pad), x) if fill == "random"
                  else x.new_zeros(b, c, h + 2 * pad, w + 2 * pad))
        padded[:, :, pad : pad + h, pad : pad + w] = x
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    b, c, h, w = x.shape
    top = torch.randint(1 - size, h, (b,), device=x.device)
    left = torch.randint(1 - size, w, (b,), device=x.device)
    r = torch.arange(h, device=x.device)
    q = torch.arange(w, device=x.device)
    in_rows = (r[None] >= top[:, None]) & (r[None] < top[:, None] + size)
    in_cols = (q[None] >= left[:, None]) & (q[None] < left[:, None] + size)
    patch = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(patch, _random_pixels(tuple(x.shape), x), x)


@dataclass(frozen=True)
class Augment:
    """Batch augmentation on float pixels 0-255, shape (B, C, H, W)."""

    flip: bool = True
    pad: int = 4
    pad_fill: str = "random"
    cutout: int = 0

    def __post_init__(self) -> None:
        for name in ("pad", "cutout"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"data.{name}={getattr(self, name)} must be a whole number.")
        if self.pad_fill not in PAD_FILLS:
            raise ConfigError(f"data.pad_fill={self.pad_fill} is unknown: use one of {PAD_FILLS}.")
        if self.pad < 0 or self.cutout < 0:
            raise ConfigError("data.pad and data.cutout must be >= 0 (0 switches them off).")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = random_flip(x)
        if self.pad:
            x = pad_and_crop(x, self.pad, self.pad_fill)
        if self.cutout:
            x = cutout(x, self.cutout)
        return x
