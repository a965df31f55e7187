"""Small WRNs that look trained (non-trivial BN moments and affine), for the export tests.

A freshly built WRN has BN means 0 and variances 1, so a packer that dropped or swapped
BN statistics would still pass; these models have distinct values everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from binwrn.models import WideResNet, WideResNet18


def trained_looking_wrn(seed: int = 0, **overrides) -> tuple[WideResNet, dict]:
    """A WRN-8-1 (by default) in eval mode with random BN moments and affine; its kwargs."""
    kwargs = {"depth": 8, "width": 1, "num_classes": 10, "bits": 1, **overrides}
    torch.manual_seed(seed)
    return _looking_trained(WideResNet(**kwargs), seed), kwargs


def trained_looking_wrn18(seed: int = 0, **overrides) -> tuple[WideResNet18, dict]:
    """Paper 1's ImageNet 18-2.5 shrunk to width 0.125 (8-64 channels) and 5 classes, in
    eval mode with random BN moments and affine; its kwargs."""
    kwargs = {"width": 0.125, "num_classes": 5, "bits": 1, **overrides}
    torch.manual_seed(seed)
    return _looking_trained(WideResNet18(**kwargs), seed), kwargs


def _looking_trained(model: nn.Module, seed: int) -> nn.Module:
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
    return model.eval()


def pixel_images(n: int = 8, seed: int = 0, size: int = 32) -> np.ndarray:
    """float32 NCHW images with raw 0-255 pixel values."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size)).astype(np.float32)


def assert_same_logits(expected: np.ndarray, got: np.ndarray) -> None:
    """Equal up to float32 round-off, and the same predicted classes."""
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
