"""The ImageNet net of paper 1, "18-2.5" (McDonnell, ICLR 2018, section 4; spec 1.2.1).

Paper 1 names it only: 18 layers, width factor 2.5 on ImageNet's 64-channel base, 70.0M
parameters. The spec infers the layout from that count (69,962,720 weights here):
  input BN (affine learned) [-> ReLU] -> conv7x7 3->160, stride `stem_stride` [-> 3x3/2 max pool]
  4 stages x 2 blocks, widths 64k/128k/256k/512k = 160/320/640/1280 at k=2.5, each block the
      paper-1 pre-activation block of binwrn.models.wrn (BN-ReLU-conv3x3 twice, identity or
      3x3/2 average pool + zero-channel shortcut; the first block of stages 2-4 strides 2)
  head: BN -> ReLU -> conv1x1 1280->classes -> BN (never affine) -> global average pool.
1 + 4*2*2 + 1 = 18 convolutions, none with a bias, all 1-bit unless first_last_fp32.

The paper does not state the stem (spec open question 6). binwrn's defaults are ResNet-18's
(He et al. 2016): a 7x7 conv with stride 2, then 3x3 max pooling with stride 2, so a 224x224
crop reaches the blocks at 56x56 and the head at 7x7. As in the CIFAR net, the stem conv's
output starts the un-normalised residual stream: no BN or ReLU sits between it and the pool
(each block normalises its own input). `stem_stride=1` or `stem_pool=False` change the
spatial sizes only; the weight count stays 69.96M.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models.binary import BinaryConv2d
from binwrn.models.rules import check_resnet18_depth, first_stage_width
from binwrn.models.wrn import PreActBlock

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2)}  # ResNet-18's basic-block layout (spec 1.2.1)


def stage_widths(width: float) -> list[int]:
    """64k, 128k, 256k, 512k channels; 64k must be a whole number (k=2.5 gives 160)."""
    first = first_stage_width(width)
    return [first * 2**stage for stage in range(4)]


class WideResNet18(nn.Module):
    """Paper 1's 18-2.5 ImageNet net with 1-bit (bits=1) or fp32 (bits=32) convolutions.

    Paper values are the defaults, except bn_affine: paper 1 learns BN scale and offset on
    ImageNet (section 5.3), which `bn=learned` selects, as the p1_t2 presets do.
    """

    def __init__(
        self,
        depth: int = 18,
        width: float = 2.5,
        num_classes: int = 1000,
        in_channels: int = 3,
        bits: int = 1,
        first_last_fp32: bool = False,
        scale: str = "he",
        grad: str = "pass_through",
        input_relu: bool = True,
        bn_affine: bool = True,
        bn_momentum: float | None = 0.1,
        stem_stride: int = 2,
        stem_pool: bool = True,
    ) -> None:
        super().__init__()
        check_resnet18_depth(depth)  # BLOCKS_PER_STAGE holds each of rules.RESNET18_DEPTHS
        if stem_stride not in (1, 2):
            raise ConfigError(f"model.stem_stride={stem_stride} is not allowed: use 2 "
                              "(ResNet-18's) or 1.")
        widths = stage_widths(width)

        def conv(c_in: int, c_out: int, k: int, stride: int, layer_bits: int = bits):
            return BinaryConv2d(c_in, c_out, k, stride, bits=layer_bits, scale=scale, grad=grad)

        edge_bits = 32 if first_last_fp32 else bits
        self.input_bn = nn.BatchNorm2d(in_channels, affine=True, momentum=bn_momentum)
        self.input_relu = input_relu
        self.conv_in = conv(in_channels, widths[0], 7, stem_stride, edge_bits)
        self.stem_pool = stem_pool
        blocks, c_in = [], widths[0]
        for stage, (c_out, n) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth], strict=True)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PreActBlock(c_in, c_out, stride, conv, bn_affine, bn_momentum))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn_head = nn.BatchNorm2d(c_in, affine=bn_affine, momentum=bn_momentum)
        self.conv_out = conv(c_in, num_classes, 1, 1, edge_bits)
        # No affine on the logits' BN, as in the CIFAR net (spec 1.2.3).
        self.bn_out = nn.BatchNorm2d(num_classes, affine=False, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x)
        if self.input_relu:
            x = F.relu(x)
        x = self.conv_in(x)
        if self.stem_pool:
            x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.conv_out(F.relu(self.bn_head(self.blocks(x))))
        return self.bn_out(x).mean(dim=(2, 3))

    def conv_layers(self) -> list[tuple[str, BinaryConv2d]]:
        """All convolutions in forward order, with their module names."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, BinaryConv2d)]
