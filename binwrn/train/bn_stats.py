"""Recompute BN statistics after training (paper 1 section 3.2.1, spec 1.4, [M]).

Every training minibatch, built with the training augmentation, is forwarded in training
mode; each BN layer's per-batch mean and standard deviation sqrt(var + eps) are averaged over
batches (MatConvNet stores and averages the std), then written back as running statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BN layer's running mean/var with averages over `batches`; returns count."""
    layers = [m for m in model.modules() if isinstance(m, _BN)]
    sums = {m: [0.0, 0.0] for m in layers}

    def record(module: _BN, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0]
        dims = [d for d in range(x.dim()) if d != 1]
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)  # what BN normalises with
        sums[module][0] = sums[module][0] + mean.double()
        sums[module][1] = sums[module][1] + (var.double() + module.eps).sqrt()

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    was_training = model.training
    model.train()
    count = 0
    try:
        for images in batches:
            model(images)
            count += 1
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if count:
        for m, (mean_sum, std_sum) in sums.items():
            m.running_mean.copy_(mean_sum / count)
            m.running_var.copy_((std_sum / count) ** 2 - m.eps)
    return count
