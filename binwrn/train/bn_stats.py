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


# torch.var_mean on the CPU is a Welford reduction in double, one element at a time, and cost
# the recompute about half as much as its forward passes; a two-pass sum in double is
# vectorised and faster (docs/speed.md has the figures). Both are exact to within a tiny
# fraction of the channel's mean square before they are rounded to float32, so they round to
# the same float32 moments unless a result lies within AGREE of a rounding boundary; such
# channels take var_mean's moments. The statistics stay var_mean's to the bit
# (tests/test_bn_stats.py); AGREE is 250 times the largest difference measured
# (docs/bn_moments_probe.py), and about one layer in eight re-reduces a channel or two.
AGREE = 1e-11


def _to_boundary(value: torch.Tensor) -> torch.Tensor:
    """Distance of each double from the nearest midpoint between float32 values: how far it
    is from rounding to another float32."""
    rounded = value.float()
    up = torch.nextafter(rounded, rounded.new_tensor(float("inf"))).double()
    down = torch.nextafter(rounded, rounded.new_tensor(float("-inf"))).double()
    here = rounded.double()
    return torch.minimum((value - (here + up) / 2).abs(), (value - (here + down) / 2).abs())


def batch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(biased variance, mean) per channel (dim 1), exactly as
    `torch.var_mean(x, dims, unbiased=False)` returns them; faster for float32 on the CPU."""
    dims = [d for d in range(x.dim()) if d != 1]
    if x.device.type != "cpu" or x.dtype != torch.float32:  # var_mean's own accumulation
        return torch.var_mean(x, dim=dims, unbiased=False)
    count = x.numel() // x.shape[1]
    channel = [1, -1] + [1] * (x.dim() - 2)
    mean = x.sum(dims, dtype=torch.float64) / count
    var = (x.double() - mean.view(channel)).square_().sum(dims) / count
    square = mean * mean + var  # the scale both reductions' rounding errors grow with
    near = (_to_boundary(mean) <= AGREE * square.sqrt()) | (_to_boundary(var) <= AGREE * square)
    var, mean = var.float(), mean.float()
    if near.any():
        if x.shape[1] == 1:
            return torch.var_mean(x, dim=dims, unbiased=False)
        channels = near.nonzero().flatten()
        if len(channels) == 1:  # var_mean splits a lone channel between threads, which
            # changes its bits; with two or more it reduces each alone, as for the layer
            channels = torch.cat([channels, (channels + 1) % x.shape[1]])
        var[channels], mean[channels] = torch.var_mean(x.index_select(1, channels),
                                                       dim=dims, unbiased=False)
    return var, mean


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
        var, mean = batch_moments(inputs[0])  # what BN normalises with
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
