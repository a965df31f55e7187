"""Paper 3's ImageNet "ResNet-21" (Lan 2021, spec 3.4, [IT] `resnet_imagenet_binary.py`):
torchvision's ResNet-18 with all 21 of its weight layers binarizable, the paper's count.

    normalise -> conv7x7/2 3->64 -> BN -> ReLU -> maxpool 3x3/2
    4 stages x 2 basic blocks, widths 64/128/256/512, each
        h = BN(conv3x3(ReLU(BN(conv3x3(x))))) ; out = ReLU(h + shortcut(x))
      where the shortcut of each later stage's first block is BN(conv1x1/2(x)), else x
    global average pool -> FC 512->classes (with bias)

The blocks are paper 3's CIFAR ResNet's (resnet.py) with the projection shortcut. The
binarizable layers in forward order (torchvision's module order) are paper 3's layers 1..21:
conv_in (1), the block convs, each shortcut conv after its block's conv2 (layers 8, 13 and
18, torchvision's `downsample`), fc (21). Initialisation as torchvision's: Kaiming normal
fan-out for the convs, BN scale 1 and offset 0, PyTorch's default for the FC. Convs have no
bias; the FC's bias stays fp32 (spec 3.2). Unlike paper 1's WideResNet18 (resnet18_wide.py)
it normalises its input with fixed constants (paper3_parts.py) and its binary weights are
unscaled by default.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.models.binary import WeightLayers
from binwrn.models.paper3_parts import FixedNormalization, batch_norm
from binwrn.models.resnet import PostActBlock
from binwrn.models.rules import RESNET21_DEPTH, check_resnet21_depth

WIDTHS = (64, 128, 256, 512)  # torchvision ResNet-18's stages
DEPTH = RESNET21_DEPTH


class ResNet21(nn.Module):
    def __init__(
        self,
        depth: int = DEPTH,
        num_classes: int = 1000,
        in_channels: int = 3,
        bits: int = 1,
        scale: str = "none",
        grad: str = "pass_through",
        bn_affine: bool = True,
        bn_momentum: float | None = 0.1,
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        check_resnet21_depth(depth)
        layers = WeightLayers(bits, scale, grad, "torch")
        self.input_norm = FixedNormalization(input_mean, input_std, in_channels)
        self.conv_in = layers.conv(in_channels, WIDTHS[0], 7, 2)
        self.bn_in = batch_norm(WIDTHS[0], bn_affine, bn_momentum, dims=2)
        blocks, c_in = [], WIDTHS[0]
        for stage, c_out in enumerate(WIDTHS):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PostActBlock(c_in, c_out, stride, layers, bn_affine, bn_momentum,
                                           projection=True))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = layers.linear(c_in, num_classes)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_in(self.conv_in(self.input_norm(x))))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        return self.fc(self.blocks(x).mean(dim=(2, 3)))
