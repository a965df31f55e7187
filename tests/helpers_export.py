"""Small WRNs that look trained (non-trivial BN moments and affine), for the export tests.

A freshly built WRN has BN means 0 and variances 1, so a packer that dropped or swapped
BN statistics would still pass; these models have distinct values everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from binwrn.models import WideResNet


def trained_looking_wrn(seed: int = 0, **overrides) -> tuple[WideResNet, dict]:
    """A WRN-8-1 (by default) in eval mode with random BN moments and affine; its kwargs."""
    kwargs = {"depth": 8, "width": 1, "num_classes": 10, "bits": 1, **overrides}
    torch.manual_seed(seed)
    model = WideResNet(**kwargs)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, nn.BatchNorm2d):
                continue
            n = m.num_features
            if name == "input_bn":  # raw 0-255 pixels, as the trained MATLAB model's moments
                m.running_mean.copy_(110 + 20 * torch.rand(n, generator=g))
                m.running_var.copy_((60 + 10 * torch.rand(n, generator=g)) ** 2)
            else:
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            if m.affine:
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return model.eval(), kwargs


def pixel_images(n: int = 8, seed: int = 0, size: int = 32) -> np.ndarray:
    """float32 NCHW images with raw 0-255 pixel values."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size)).astype(np.float32)
