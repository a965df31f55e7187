"""Paper 3's CIFAR ResNet (Lan 2021, spec 3.4, [IT] `models/resnet_control.py`, after
He et al. 2016's CIFAR ResNet-20 as akamaster/pytorch_resnet_cifar10 writes it).

    normalise -> conv3x3 3->16 -> BN -> ReLU
    3 stages x n post-activation blocks, widths 16/32/64, n = (depth - 2) / 6, each
        h = BN(conv3x3(ReLU(BN(conv3x3(x))))) ; out = ReLU(h + shortcut(x))
    global average pool -> FC 64->classes (with bias)

The shortcut is He et al.'s option A: the identity, or where the shape changes the input
subsampled with stride 2 and zero-padded with equally many new channels on either side, no
weights. Convs have no bias; the FC's bias stays fp32 (spec 3.2). PyTorch's default
initialisation ([IT] replaced akamaster's Kaiming normal with it). No BN follows the FC, so
its unscaled +/-1 weights reach the logits directly (why "ascend" puts it last, spec 3.6).
The binarizable layers, in forward order, are paper 3's layers 1..20 for depth 20:
conv_in, blocks.0.conv1, blocks.0.conv2, ..., blocks.8.conv2, fc.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.models.binary import WeightLayers
from binwrn.models.paper3_parts import FixedNormalization, batch_norm
from binwrn.models.rules import check_resnet_depth


class OptionAShortcut(nn.Module):
    """x[:, :, ::2, ::2] with (c_out - c_in) / 2 zero channels before and after."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.pad = (c_out - c_in) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class PostActBlock(nn.Module):
    """`projection`: where the shape changes, the shortcut is BN(conv1x1/stride(x)) (He et
    al.'s option B, torchvision's ResNet-18: resnet21.py) instead of option A."""

    def __init__(self, c_in: int, c_out: int, stride: int, layers: WeightLayers,
                 bn_affine: bool, bn_momentum: float | None, projection: bool = False) -> None:
        super().__init__()
        self.conv1 = layers.conv(c_in, c_out, 3, stride)
        self.bn1 = batch_norm(c_out, bn_affine, bn_momentum, dims=2)
        self.conv2 = layers.conv(c_out, c_out, 3, 1)
        self.bn2 = batch_norm(c_out, bn_affine, bn_momentum, dims=2)
        self.shortcut: nn.Module = nn.Identity()  # registered after conv2: numbered after it
        if (stride != 1 or c_in != c_out) and projection:
            self.shortcut = nn.Sequential(layers.conv(c_in, c_out, 1, stride),
                                          batch_norm(c_out, bn_affine, bn_momentum, dims=2))
        elif stride != 1 or c_in != c_out:
            self.shortcut = OptionAShortcut(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
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
        check_resnet_depth(depth)
        layers = WeightLayers(bits, scale, grad, init)
        self.input_norm = FixedNormalization(input_mean, input_std, in_channels)
        self.conv_in = layers.conv(in_channels, 16, 3)
        self.bn_in = batch_norm(16, bn_affine, bn_momentum, dims=2)
        blocks, c_in = [], 16
        for stage, c_out in enumerate((16, 32, 64)):
            for i in range((depth - 2) // 6):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PostActBlock(c_in, c_out, stride, layers, bn_affine, bn_momentum))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = layers.linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_in(self.conv_in(self.input_norm(x))))
        return self.fc(self.blocks(x).mean(dim=(2, 3)))
