"""Paper 3's fully connected nets (Lan 2021, spec 3.4, [IT] `models/mlp3.py`): MLP3.

    normalise -> flatten -> [Linear -> BN1d -> ReLU] per hidden layer -> Linear -> BN1d
    (the official code ends in LogSoftmax and NLL loss: cross-entropy on these logits).

Paper 3 trains two on MNIST: "300" (784-300-100-10, hidden=[300, 100]) and "784"
(784-784-784-10, hidden=[784, 784]). Every Linear has a bias (kept fp32 when the weight is
1-bit) and PyTorch's default initialisation; every BN learns its affine in paper 3. The
binarizable layers are fc1, fc2, ..., in forward order: paper 3's layers 1, 2, 3.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models.binary import WeightLayers
from binwrn.models.paper3_parts import FixedNormalization, batch_norm, check_positive


class MLP(nn.Module):
    def __init__(
        self,
        hidden: list[int] = (300, 100),
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
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
        if not hidden:
            raise ConfigError("model.hidden=[] is not allowed: list the hidden layer widths "
                              "(paper 3: [300, 100] or [784, 784]).")
        widths = [in_channels * image_size * image_size,
                  *(check_positive("hidden", h) for h in hidden), num_classes]
        layers = WeightLayers(bits, scale, grad, init)
        self.input_norm = FixedNormalization(input_mean, input_std, in_channels)
        self.depth = len(widths) - 1
        for i, (n_in, n_out) in enumerate(pairwise(widths), start=1):
            self.add_module(f"fc{i}", layers.linear(n_in, n_out))
            self.add_module(f"bn{i}", batch_norm(n_out, bn_affine, bn_momentum, dims=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x).flatten(1)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(x))
            if i < self.depth:
                x = F.relu(x)
        return x
