"""Recompute BN statistics after training (paper 1 section 3.2.1, spec 1.4, [M]).

Every training minibatch, built with the training augmentation, is forwarded in training
mode; each BN layer's per-batch mean and standard deviation sqrt(var + eps) are averaged over
batches (MatConvNet stores and averages the std), then written back as running statistics.

With a `seed`, the batches are drawn (order, flips, crops, cutout: whatever the iterable
draws from torch's generators) from generators seeded with it, inside a fork of torch's
random state: the statistics are a function of the weights and the seed alone, so a run
killed after fit and resumed from its checkpoint gets the uninterrupted run's numbers, and
the training stream is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
from torch import nn

from binwrn.kill_points import kill_point

_BN = nn.modules.batchnorm._BatchNorm


@contextmanager
def _seeded(model: nn.Module, seed: int | None):
    """Inside: torch's CPU generator and the model's CUDA device's, forked and seeded."""
    if seed is None:
        yield
        return
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    cuda = [torch.device(device).index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


# Inference mode: no autograd state at all (no_grad still tracks versions and views), 15-50 %
# faster per forward on a loaded 2-core CPU (docs/benchmarks.md); the same kernels, so the
# same statistics to the bit (tests/test_bn_stats.py). The buffers stay normal tensors.
@torch.inference_mode()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[torch.Tensor],
                            seed: int | None = None) -> int:
    """Replace every BN layer's running mean/var with averages over `batches`; returns count.
    `seed`: draw the batches from seeded generators (module docstring)."""
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
        with _seeded(model, seed):  # the batches are drawn inside, as they are iterated
            for images in batches:
                model(images)
                count += 1
                if count == 1:
                    kill_point("bn_recompute")  # a test hook (binwrn/kill_points.py)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if count:
        for m, (mean_sum, std_sum) in sums.items():
            m.running_mean.copy_(mean_sum / count)
            m.running_var.copy_((std_sum / count) ** 2 - m.eps)
    return count
