"""What paper 3's networks (Lan 2021, spec 3.4) share: their fixed input normalisation and
their checked constructor options.

Paper 3 feeds its nets images normalised as torchvision's ToTensor + Normalize do (spec 3.5):
x / 255, minus a per-channel mean, divided by a per-channel std, the data set's constants.
binwrn's batches reach the model as raw 0-255 pixels (the WRN's input BN normalises them), so
these nets normalise as their first step, with the constants of `dataset.mean`/`dataset.std`.
"""

from __future__ import annotations

import torch
from torch import nn

from binwrn.errors import ConfigError


class FixedNormalization(nn.Module):
    """(x / 255 - mean) / std per channel; constants, not learned, not in checkpoints."""

    def __init__(self, mean: list[float] | None, std: list[float] | None,
                 channels: int) -> None:
        super().__init__()
        for name, values in (("input_mean", mean), ("input_std", std)):
            if values is None or len(values) != channels:
                raise ConfigError(f"model.{name}={values} must list one number per input "
                                  f"channel ({channels}): set dataset.mean and dataset.std "
                                  "(paper 3: the data set's channel statistics).")
        if min(std) <= 0:
            raise ConfigError(f"model.input_std={std} must be positive.")
        shape = (1, channels, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std).view(shape)),
                             persistent=False)
        self.register_buffer("shift", torch.tensor(mean).view(shape) / torch.tensor(std)
                             .view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale - self.shift


def batch_norm(features: int, affine: bool, momentum: float | None, dims: int) -> nn.Module:
    """Standard BN after every weight layer (paper 3 learns its affine: bn.learn_affine)."""
    kind = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return kind(features, affine=affine, momentum=momentum)


def check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model.{name}={value} is not allowed: use a whole number >= 1.")
    return value
