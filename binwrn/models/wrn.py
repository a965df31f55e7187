"""Wide ResNet "D-k" of McDonnell (ICLR 2018), paper-spec section 1.2, and its variant
without batch normalisation of McDonnell et al. (2019), spec section 2.2.

Layout (all convs without bias, pre-activation blocks), norm="batchnorm" (paper 1):
  input BN (affine learned) [-> ReLU] -> conv3x3 3->16k
  3 stages x n blocks, n = (D-2)/6, widths 16k/32k/64k, each block
      h = conv3x3(ReLU(BN(x))) ; h = conv3x3(ReLU(BN(h))) ; out = shortcut(x) + h
  head: BN -> ReLU -> conv1x1 64k->classes -> BN (never affine) -> global average pool.

norm="shifted_relu" (paper 2, as the official Keras `resnet_srelu`): every internal BN+ReLU
pair becomes the shifted ReLU max(x, -1); the input BN stays and feeds conv 1 directly;
  blocks: h = conv3x3(sReLU(x)) ; h = conv3x3(sReLU(h)) ; out = shortcut(x) + h
  head: sReLU -> conv1x1 -> divide by a fixed temperature T -> global average pool.
With no BN on the logits to fix their scale (spec 1.2.3), the fixed divisor T keeps them
small; the official code sets T per run without saying how it was chosen (spec 2.2).

The skip path carries the un-normalised stream. The downsampling shortcut is 3x3 average
pooling, stride 2, pad 1, excluding the padding from the average (as TF 'same' and
MatConvNet do; spec 1.2.2 and open question 12), then concatenation with zero channels.

skip=False is paper 1 Appendix B's plain net (spec 1.2.4, `model=plain`): the same layers
without the shortcuts, so each block is BN-ReLU-conv twice and nothing is added; the
appendix scales it with alpha = init std = 2/sqrt(F^2 C_in), `init_gain=4` (He's is 2).
final_bn_affine=True learns scale and offset in the BN on the logits, the [SZ] choice that
spec 4 item 6(c) ablates (the paper: never, spec 1.2.3).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models.binary import BinaryConv2d
from binwrn.models.rules import blocks_per_stage, check_norm, check_wrn_width


class DownsampleShortcut(nn.Module):
    """3x3/2 average pool (padding excluded) + zero channels: no weights (spec 1.2.2)."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        zeros = pooled.new_zeros(pooled.shape[0], self.extra_channels, *pooled.shape[2:])
        return torch.cat([pooled, zeros], dim=1)


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """The identity where the shape stays, else the downsampling shortcut."""
    return DownsampleShortcut(c_out - c_in) if stride != 1 or c_in != c_out else nn.Identity()


def shifted_relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, -1), paper 2's replacement for BN+ReLU (spec 2.2).

    The Keras code writes it ReLU(x + 1) - 1, whose float rounding loses small x (1e-8 + 1 - 1
    is 0); clamping is the same function without that round-off, and what the export writes.
    """
    return torch.clamp_min(x, -1.0)


class PreActBlock(nn.Module):
    """BN-ReLU-conv, BN-ReLU-conv, plus the identity or downsampling shortcut (none when
    `skip` is False: Appendix B's plain net)."""

    def __init__(self, c_in: int, c_out: int, stride: int, conv, bn_affine: bool, bn_momentum,
                 skip: bool = True):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, affine=bn_affine, momentum=bn_momentum)
        self.conv1 = conv(c_in, c_out, 3, stride)
        self.bn2 = nn.BatchNorm2d(c_out, affine=bn_affine, momentum=bn_momentum)
        self.conv2 = conv(c_out, c_out, 3, 1)
        self.shortcut = shortcut(c_in, c_out, stride) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        return h if self.shortcut is None else self.shortcut(x) + h


class ShiftedReLUBlock(nn.Module):
    """sReLU-conv, sReLU-conv, plus the shortcut: paper 2's block, no BN (spec 2.2)."""

    def __init__(self, c_in: int, c_out: int, stride: int, conv, skip: bool = True):
        super().__init__()
        self.conv1 = conv(c_in, c_out, 3, stride)
        self.conv2 = conv(c_out, c_out, 3, 1)
        self.shortcut = shortcut(c_in, c_out, stride) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(shifted_relu(x))
        h = self.conv2(shifted_relu(h))
        return h if self.shortcut is None else self.shortcut(x) + h


class WideResNet(nn.Module):
    """McDonnell's WRN with 1-bit (bits=1) or fp32 (bits=32) convolutions.

    Paper defaults: every conv binary, including the first and the 1x1 classifier
    (first_last_fp32=False; [SZ] keeps them fp32); input ReLU on, as in the MATLAB code the
    paper used ([M]; the Keras code omits it, the paper calls it optional); internal BN
    affine off on CIFAR/SVHN/MNIST.

    norm="shifted_relu" builds paper 2's net, which needs `temperature` (T > 0); it has no
    internal BN, so bn_affine does not apply to it, and bn_momentum only to the input BN.
    Its paper value of input_relu is False (the config picks it). The batchnorm net keeps
    paper 1's module names, so its checkpoints load unchanged.

    skip=False and init_gain=4 make Appendix B's plain net (module docstring);
    final_bn_affine=True the ablation of spec 4 item 6(c).
    """

    def __init__(
        self,
        depth: int = 20,
        width: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        bits: int = 1,
        first_last_fp32: bool = False,
        scale: str = "he",
        grad: str = "pass_through",
        input_relu: bool = True,
        bn_affine: bool = False,
        bn_momentum: float | None = 0.1,
        norm: str = "batchnorm",
        temperature: float | None = None,
        skip: bool = True,
        init_gain: float = 2.0,
        final_bn_affine: bool = False,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        check_norm(norm, temperature, final_bn_affine)
        if not (isinstance(init_gain, int | float) and not isinstance(init_gain, bool)
                and math.isfinite(init_gain) and init_gain > 0):
            raise ConfigError(f"model.init_gain={init_gain} is not allowed: give a positive "
                              "number (2: He's scale, paper 1; 4: Appendix B's plain net).")
        self.norm = norm
        self.temperature = None if temperature is None else float(temperature)
        check_wrn_width(width)

        def conv(c_in: int, c_out: int, k: int, stride: int, layer_bits: int = bits):
            return BinaryConv2d(c_in, c_out, k, stride, bits=layer_bits, scale=scale, grad=grad,
                                init_gain=float(init_gain))

        edge_bits = 32 if first_last_fp32 else bits
        widths = [16 * width, 32 * width, 64 * width]
        self.input_bn = nn.BatchNorm2d(in_channels, affine=True, momentum=bn_momentum)
        self.input_relu = input_relu
        self.conv_in = conv(in_channels, widths[0], 3, 1, edge_bits)
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(
                    PreActBlock(c_in, c_out, stride, conv, bn_affine, bn_momentum, skip)
                    if norm == "batchnorm" else ShiftedReLUBlock(c_in, c_out, stride, conv, skip))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        # Registration order is forward order (the exporter walks it); paper 1's names stay.
        if norm == "batchnorm":
            self.bn_head = nn.BatchNorm2d(c_in, affine=bn_affine, momentum=bn_momentum)
        self.conv_out = conv(c_in, num_classes, 1, 1, edge_bits)
        if norm == "batchnorm":
            # No affine on the logits' BN: their spread cannot grow, like label smoothing
            # (spec 1.2.3); final_bn_affine=True is the ablation.
            self.bn_out = nn.BatchNorm2d(num_classes, affine=final_bn_affine,
                                         momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x)
        if self.input_relu:
            x = F.relu(x)
        x = self.blocks(self.conv_in(x))
        if self.norm == "shifted_relu":
            return (self.conv_out(shifted_relu(x)) / self.temperature).mean(dim=(2, 3))
        x = self.conv_out(F.relu(self.bn_head(x)))
        return self.bn_out(x).mean(dim=(2, 3))

    def conv_layers(self) -> list[tuple[str, BinaryConv2d]]:
        """All convolutions in forward order, with their module names."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, BinaryConv2d)]
