"""Batch norm synchronised across DDP processes on any device (`trainer.sync_batchnorm=true`).

With the global batch split over devices, a BN layer that normalises only its own device's
share (62 of 125 images) trains a different net from the paper's single GPU; synchronised,
every layer normalises each step with the mean and variance of all 125 images, as the paper's
single GPU did (spec 1.4). torch's SyncBatchNorm refuses CPU tensors, and gloo DDP on CPU is
how this is tested, so on a CPU the statistics and the gradient's two sums are all-reduced
here (two small all-reduces per layer and step); on a GPU torch's own fused CUDA kernels run
(the Lightning plugin choosing between them is train/ddp.py's SyncBatchNormAnyDevice).
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn

_DIMS = (0, 2, 3)  # all but the channel axis of (N, C, H, W)


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t[None, :, None, None]


class _SyncedNorm(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) [* weight + bias], mean and var over all processes.
    Computed in float32 (float64 for float64 input), like BN under autocast; the sums that
    are all-reduced in float64, as E[x^2] - mean^2 cancels digits (raw 0-255 pixels)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        channels, dtype = x.shape[1], torch.promote_types(x.dtype, torch.float32)
        x64 = x.double()
        local = torch.cat([x64.sum(_DIMS), (x64 * x64).sum(_DIMS),
                           x64.new_tensor([x64.numel() / channels])])
        dist.all_reduce(local, group=group)
        count = local[-1]
        mean = local[:channels] / count
        var = (local[channels:2 * channels] / count - mean * mean).clamp_min(0)
        with torch.no_grad():  # what BN's running averages keep: the unbiased variance
            running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
            unbiased = var * count / (count - 1)
            running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        invstd = (var + eps).rsqrt().to(dtype)
        normalised = (x.to(dtype) - _per_channel(mean.to(dtype))) * _per_channel(invstd)
        ctx.save_for_backward(normalised, invstd, weight)
        ctx.count, ctx.group = count, group
        if weight is None:
            return normalised
        return normalised * _per_channel(weight) + _per_channel(bias)

    @staticmethod
    def backward(ctx, grad_out):
        normalised, invstd, weight = ctx.saved_tensors
        grad_out = grad_out.to(normalised.dtype)
        channels = grad_out.shape[1]
        local_dy, local_dy_xhat = grad_out.sum(_DIMS), (grad_out * normalised).sum(_DIMS)
        sums = torch.cat([local_dy, local_dy_xhat]).double()
        dist.all_reduce(sums, group=ctx.group)
        mean_dy = (sums[:channels] / ctx.count).to(grad_out.dtype)
        mean_dy_xhat = (sums[channels:] / ctx.count).to(grad_out.dtype)
        scale = invstd if weight is None else invstd * weight
        grad_in = (grad_out - _per_channel(mean_dy) - normalised * _per_channel(mean_dy_xhat)
                   ) * _per_channel(scale)
        # This process's parameter gradients; DDP averages them like every other parameter's.
        grad_weight = None if weight is None else local_dy_xhat
        grad_bias = None if weight is None else local_dy
        return grad_in, grad_weight, grad_bias, None, None, None, None, None


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training forward normalises over all DDP processes (gloo on a CPU).
    A plain subclass, not torch's SyncBatchNorm, which DDP refuses on a CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)  # None: a cumulative average, as in torch's BN
        return _SyncedNorm.apply(x, self.weight, self.bias, self.running_mean,
                                 self.running_var, self.eps, momentum, dist.group.WORLD)


def cpu_synced(model: nn.Module) -> nn.Module:
    """Every BatchNorm2d becomes a CpuSyncBatchNorm, in place (the subclass adds behaviour,
    no state: the class is swapped and every tensor kept)."""
    return _swap_class(model, nn.BatchNorm2d, CpuSyncBatchNorm)


def cpu_unsynced(model: nn.Module) -> nn.Module:
    return _swap_class(model, CpuSyncBatchNorm, nn.BatchNorm2d)


def _swap_class(model: nn.Module, old: type, new: type) -> nn.Module:
    for module in model.modules():
        if type(module) is old:
            module.__class__ = new
    return model
