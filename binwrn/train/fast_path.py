"""The switches of the fast path (`speed.*`, `trainer.precision`), resolved for a device.

Each is on where it helps and off where it does not (docs/speed.md):
- `trainer.precision=auto`: bf16 autocast with fp32 master weights on a CUDA GPU that supports
  bf16, fp32 elsewhere. Not the default: bf16 is a deviation from the paper's fp32 arithmetic
  (the default `32-true`), and so is TF32 (`trainer.tf32`, off by default, `set_tf32`);
- channels-last memory format on CUDA (tensor-core convolutions want NHWC), not on a CPU,
  where oneDNN is as fast or faster with NCHW at these sizes (measured by `make bench`);
- `torch.compile` of the network on CUDA; on a CPU the compile time (minutes)
  outweighs the gain for every run short enough to be run on a CPU.
The data path (uint8 resident on the device, augmented there per batch, no workers) and the
per-epoch metric reads (no host sync per step) are always on: they have no downside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from binwrn.errors import ConfigError

SWITCH_VALUES = ("auto", True, False)


def on_cuda(accelerator: str) -> bool:
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def _switch(value, name: str, accelerator: str) -> bool:
    if value not in SWITCH_VALUES:
        raise ConfigError(f"speed.{name}={value} is not allowed: use auto, true or false.")
    return on_cuda(accelerator) if value == "auto" else bool(value)


def resolve_precision(precision: str, accelerator: str) -> str:
    """`auto`: bf16 autocast (fp32 weights) on a bf16-capable GPU, else full fp32."""
    if str(precision) != "auto":
        return str(precision)
    if on_cuda(accelerator) and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def set_tf32(enabled: bool) -> None:
    """Whether CUDA convolutions and matmuls may round fp32 inputs to TF32 (10-bit mantissa) on
    Ampere and later GPUs. PyTorch allows it for cuDNN convolutions by default and not for
    matmuls; binwrn sets both, false unless `trainer.tf32=true`. The legacy flags, as
    torch.compile's kernels read those (mixing them with the newer fp32_precision API
    raises)."""
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)


@dataclass(frozen=True)
class FastPath:
    channels_last: bool
    compile: bool

    @classmethod
    def from_config(cls, speed, accelerator: str) -> FastPath:
        return cls(channels_last=_switch(speed.channels_last, "channels_last", accelerator),
                   compile=_switch(speed.compile, "compile", accelerator))

    def apply(self, model: nn.Module) -> nn.Module:
        """In place, so parameter names and checkpoints are those of the plain model."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile:
            model.compile()  # nn.Module.compile keeps the state_dict keys unprefixed
        return model

    def images(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images
