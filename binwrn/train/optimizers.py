"""The optimizer of a run, from `optim.*` (the config helper builds these settings).

sgd (conf/optim/sgd.yaml): paper 1 section 3.2, momentum 0.9, no Nesterov, weight decay 5e-4
on the latent conv weights only (`decay_scope: weights`: the BN affine parameters get none,
as in [K] and [M]); also paper 3's ResNet-20 (spec 3.3: weight decay 1e-4 on every
parameter, `decay_scope: all`, as its `SGD(net.parameters(), weight_decay=1e-4)` does).
adam (conf/optim/adam.yaml): paper 3's MLPs and VGGs, no weight decay, a constant rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from binwrn.errors import ConfigError
from binwrn.models.binary import BINARY_LAYERS
from binwrn.train.rules import DECAY_SCOPES, OPTIMIZERS


def optimizer_groups(model: nn.Module, weight_decay: float,
                     scope: str = "weights") -> list[dict]:
    """scope "weights": the weights of the conv and linear layers (the latent fp32 weights
    when 1-bit) decay, biases and BN parameters do not; "all": every parameter decays."""
    if scope == "all":
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    weights = [m.weight for m in model.modules() if isinstance(m, BINARY_LAYERS)]
    weight_ids = {id(p) for p in weights}
    other = [p for p in model.parameters() if id(p) not in weight_ids]
    return [{"params": weights, "weight_decay": weight_decay},
            {"params": other, "weight_decay": 0.0}]


@dataclass(frozen=True)
class OptimizerSettings:
    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_scope: str = "weights"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    reset_momentum_at_restart: bool = False  # [M] zeroes SGD's momentum at SGDR restarts

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name={self.name} is not supported: use optim=sgd or "
                              "optim=adam.")
        if self.decay_scope not in DECAY_SCOPES:
            raise ConfigError(f"optim.decay_scope={self.decay_scope} is not supported: use "
                              f"one of {DECAY_SCOPES}.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas={list(self.betas)} must be two numbers in [0, 1).")

    def build(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        groups = optimizer_groups(model, self.weight_decay, self.decay_scope)
        if self.name == "adam":
            return torch.optim.Adam(groups, lr=lr, betas=self.betas, eps=self.eps)
        return torch.optim.SGD(groups, lr=lr, momentum=self.momentum, nesterov=self.nesterov)
