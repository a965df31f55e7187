"""Paper 3's VGG-style nets (Lan 2021, spec 3.4, [IT] `models/vgg5binary.py`,
`vgg9binary.py`; cited there as Frankle et al. 2019's Conv-2 and Conv-6).

    VGG-5: conv64 conv64 MP | FC256 FC256 FC10
    VGG-9: conv64 conv64 MP conv128 conv128 MP conv256 conv256 MP | FC256 FC256 FC10

Every weight layer is followed by BN (the last FC's too) and all but the last by ReLU;
max-pooling (2x2, stride 2) comes after the ReLU. Convs are 3x3, padding 1, with bias; every
bias stays fp32 when its weight is 1-bit (spec 3.2). PyTorch's default initialisation.
(VGG-9's docstring in [IT] says 512-unit FCs; its code, followed here, uses 256.)
The binarizable layers, in forward order, are paper 3's layers 1..L: conv1, conv2, ...,
then fc3, fc4, fc5 (VGG-5) or fc7, fc8, fc9 (VGG-9).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models.binary import WeightLayers
from binwrn.models.paper3_parts import FixedNormalization, batch_norm
from binwrn.models.rules import check_vgg_depth

POOL = "M"
# depth -> (conv widths with pools, hidden FC widths); the classifier FC follows them.
LAYOUTS = {
    5: ((64, 64, POOL), (256, 256)),
    9: ((64, 64, POOL, 128, 128, POOL, 256, 256, POOL), (256, 256)),
}


class VGG(nn.Module):
    def __init__(
        self,
        depth: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        bits: int = 1,
        scale: str = "none",
        grad: str = "pass_through",
        init: str = "torch",
        bn_affine: bool = True,
        bn_momentum: float | None = 0.1,
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        check_vgg_depth(depth)  # LAYOUTS holds each of rules.VGG_DEPTHS
        convs, fcs = LAYOUTS[depth]
        layers = WeightLayers(bits, scale, grad, init)
        self.input_norm = FixedNormalization(input_mean, input_std, in_channels)
        self.depth = depth
        self.plan: list = []  # forward order: POOL or (layer name, index of it and its BN)
        c_in, size, index = in_channels, image_size, 0
        for item in convs:
            if item == POOL:
                self.plan.append(POOL)
                size //= 2
                continue
            index += 1
            self.add_module(f"conv{index}", layers.conv(c_in, item, 3, bias=True))
            self.add_module(f"bn{index}", batch_norm(item, bn_affine, bn_momentum, dims=2))
            self.plan.append((f"conv{index}", index))
            c_in = item
        if size < 1:
            raise ConfigError(f"dataset.image_size={image_size} is too small for VGG-{depth}'s "
                              "pooling: use 32x32 images (CIFAR-10).")
        n_in = c_in * size * size
        for n_out in (*fcs, num_classes):
            index += 1
            self.add_module(f"fc{index}", layers.linear(n_in, n_out))
            self.add_module(f"bn{index}", batch_norm(n_out, bn_affine, bn_momentum, dims=1))
            self.plan.append((f"fc{index}", index))
            n_in = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x)
        for step in self.plan:
            if step == POOL:
                x = F.max_pool2d(x, 2)
                continue
            name, index = step
            if name.startswith("fc"):
                x = x.flatten(1)  # a no-op after the first FC
            x = getattr(self, f"bn{index}")(getattr(self, name)(x))
            if index < self.depth:
                x = F.relu(x)
        return x
