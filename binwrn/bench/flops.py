"""Model FLOPs of a training step, counted from the convolutions actually run.

A multiply-add is 2 FLOPs. A training step costs about 3x the forward pass (forward, and the
backward's gradients with respect to inputs and to weights); BN, ReLU, pooling and the
1-bit sign are left out, so "model TFLOP/s" is the convention MLPerf-style reports use.
"""

from __future__ import annotations

import torch
from torch import nn


def forward_flops_per_image(model: nn.Module, image_size: int = 32) -> int:
    total = 0

    def count(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        per_output = 2 * (module.in_channels // module.groups) * k_h * k_w
        total += per_output * output.shape[1] * output.shape[2] * output.shape[3]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        was_training = model.training
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size))
        model.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def train_step_flops_per_image(model: nn.Module) -> int:
    return 3 * forward_flops_per_image(model)


def measured_peak_tflops(device: torch.device, arithmetic: str = "bf16") -> float | None:
    """Dense matmul throughput actually reached on this GPU (None on a CPU): `bf16`, `tf32`
    (fp32 tensors on TF32 tensor cores, what cuDNN's fp32 convolutions use by default) or
    `fp32` (TF32 off)."""
    if device.type != "cuda":
        return None
    n = 8192
    dtype = torch.bfloat16 if arithmetic == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    allowed = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = arithmetic == "tf32"
    try:
        for _ in range(3):
            a @ b
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        repeats = 20
        for _ in range(repeats):
            a @ b
        end.record()
        torch.cuda.synchronize(device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allowed
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1000) / 1e12
