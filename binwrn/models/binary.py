"""1-bit convolutions and linear layers of McDonnell (ICLR 2018), paper-spec section 1.3.

Forward: W_hat = alpha * sign(W), with alpha = sqrt(2 / (k*k*C_in)) a constant (paper 1
Eq. 1). Backward: the latent fp32 W receives dL/dW_hat unchanged, with no alpha factor and
no clipping (paper 1 section 2.1.1). A custom autograd function is used rather than the
`W + (W_hat - W).detach()` idiom because that idiom's forward value differs from
alpha * sign(W) by float round-off, and the packed export must reproduce it bit for bit.

Options exist only for ablations (spec section 4 item 6):
- scale: "he" (paper), "mean_abs" (per layer, BWN-style), "mean_abs_channel" (XNOR-style);
- grad: "pass_through" (paper), "alpha_scaled" (the naive STE the paper warns against).

scale="none" is paper 3's binarizer (Lan 2021, spec 3.2): W_hat = sign(W), exactly +/-1, the
gradient at sign(W) applied to the latent W unchanged (identity STE), and no clipping, as the
official code's `clip_weights` is a no-op.

Paper 3 binarizes one layer at a time (spec 3.3): `binary_active` says whether this 1-bit
layer is binary yet. It is True unless a schedule (binwrn.train.iterative) switches it; an
inactive layer computes with its fp32 latent weight. It is part of the model's state
(checkpoints, and so the export, which stores an inactive layer's weights as fp32); a
checkpoint from before it existed loads as all binary, what paper 1's nets are.

Paper 3's networks (spec 3.4) also binarize fully connected layers (`BinaryLinear`, the same
binarizer), keep their biases fp32 (spec 3.2: only `weight` tensors are binarized) and start
from PyTorch's default initialisation (`init="torch"`); paper 1's layers have no bias and
start He-normal with std alpha (`init="he"`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models.rules import check_weight_options


def he_scale(kernel_size: int, in_channels: int, gain: float = 2.0) -> float:
    """alpha = sqrt(gain / (k*k*C_in)): the He fan-in std, used as init std and 1-bit scale."""
    return math.sqrt(gain / (kernel_size * kernel_size * in_channels))


class _ScaledSign(torch.autograd.Function):
    """alpha * sign(W) forward; backward passes the gradient times `grad_factor`.

    grad_factor 1.0 is the paper's pass-through (a multiply by 1.0 is exact in floating
    point, so dL/dW equals dL/dW_hat bit for bit); alpha gives the naive scaled STE.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, alpha, grad_factor):
        ctx.grad_factor = grad_factor
        return torch.sign(weight) * alpha

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output * ctx.grad_factor, None, None


class BinaryWeight:
    """What makes a torch layer 1-bit: the binarizer of its `weight`, the per-layer switch of
    paper 3's schedule, and the initialisation. Mixed into `nn.Conv2d` and `nn.Linear`."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def _init_binary(self, bits: int, scale: str, grad: str, alpha: float, init: str) -> None:
        if bits not in (1, 32):
            raise ConfigError(f"model.bits={bits} is not supported: use 1 or 32.")
        check_weight_options(scale, grad, init)
        self.bits, self.scale, self.grad, self.alpha = bits, scale, grad, alpha
        if init == "he":  # paper 1: He fan-in normal with std alpha, so 1-bit and fp32 nets
            nn.init.normal_(self.weight, mean=0.0, std=alpha)  # start from one distribution
            if self.bias is not None:
                nn.init.zeros_(self.bias)
        # init == "torch": the layer's own reset_parameters() already ran (paper 3, spec 3.4)
        # A 0-d tensor, not a Python bool: torch.compile guards on Python attributes and
        # would recompile at every switch (then give up after 8). Persistent: a net stopped
        # before its schedule binarized every layer is exported as it was trained.
        self.register_buffer("binary_active", torch.tensor(True))
        self.progressive = False  # True once a layer-by-layer schedule drives binary_active

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        # Checkpoints from before the state was stored lack the key: all binary (paper 1).
        state_dict.setdefault(prefix + "binary_active", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args)
        if not bool(self.binary_active):
            self.progressive = True  # an fp32 layer computes with its latent weight

    @property
    def is_binary(self) -> bool:
        """One bit per weight as the layer stands: 1-bit, and binary already."""
        return self.bits == 1 and bool(self.binary_active)

    def effective_scale(self) -> float | torch.Tensor:
        """The scale multiplying sign(W): the constant (a Python float, so no host-device
        transfer per step), or mean|W| per layer or per output unit (detached)."""
        if self.scale == "mean_abs":
            return self.weight.detach().abs().mean()
        if self.scale == "mean_abs_channel":
            dims = tuple(range(1, self.weight.dim()))
            return self.weight.detach().abs().mean(dim=dims, keepdim=True)
        if self.scale == "none":
            return 1.0  # paper 3: +/-1 weights (spec 3.2)
        return self.alpha

    def effective_weight(self) -> torch.Tensor:
        """W_hat, the weight the layer uses in forward and backward propagation."""
        if self.bits == 32:
            return self.weight
        alpha = self.effective_scale()
        binary = _ScaledSign.apply(self.weight, alpha,
                                   1.0 if self.grad == "pass_through" else alpha)
        if not self.progressive:
            return binary  # paper 1: binary from the first step; no extra op in its graph
        return torch.where(self.binary_active, binary, self.weight)

    def set_binary(self, active: bool) -> None:
        """Switch this 1-bit layer between binary and fp32 (paper 3's per-layer schedule)."""
        self.progressive = True
        self.binary_active.fill_(active)


class BinaryConv2d(BinaryWeight, nn.Conv2d):
    """Conv2d whose weight is 1-bit (bits=1) or full precision (bits=32), "same" padding.

    Paper 1 (the defaults): no bias, He fan-in normal init with std alpha (spec 1.3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bits: int = 1,
        scale: str = "he",
        grad: str = "pass_through",
        init_gain: float = 2.0,
        bias: bool = False,
        init: str = "he",
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride=stride,
                           padding=kernel_size // 2, bias=bias)
        self._init_binary(bits, scale, grad, he_scale(kernel_size, in_channels, init_gain),
                          init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, alpha={self.alpha:.6g}"


class BinaryLinear(BinaryWeight, nn.Linear):
    """Linear layer whose weight is 1-bit (bits=1) or fp32; the bias, if any, stays fp32
    (paper 3, spec 3.2). alpha = sqrt(2 / in_features), the He scale of a 1x1 kernel."""

    def __init__(self, in_features: int, out_features: int, bits: int = 1, scale: str = "he",
                 grad: str = "pass_through", bias: bool = True, init: str = "torch") -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_binary(bits, scale, grad, he_scale(1, in_features), init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, alpha={self.alpha:.6g}"


BINARY_LAYERS = (BinaryConv2d, BinaryLinear)


@dataclass(frozen=True)
class WeightLayers:
    """Builds one network's weight layers, all with the same bits and binarizer (the
    `model.*` options), so a network file only says where its layers go."""

    bits: int = 1
    scale: str = "he"
    grad: str = "pass_through"
    init: str = "he"

    def conv(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1,
             bias: bool = False) -> BinaryConv2d:
        return BinaryConv2d(c_in, c_out, kernel_size, stride, bits=self.bits, scale=self.scale,
                            grad=self.grad, bias=bias, init=self.init)

    def linear(self, n_in: int, n_out: int, bias: bool = True) -> BinaryLinear:
        return BinaryLinear(n_in, n_out, bits=self.bits, scale=self.scale, grad=self.grad,
                            bias=bias, init=self.init)
