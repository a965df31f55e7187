"""Section `speed`: WRN-20-10 epoch time, 1-bit and fp32 weights, in the paper's fp32
arithmetic and in bf16 autocast, through binwrn's Lightning path (binwrn.bench.measure);
model TFLOP/s and their fraction of the measured matmul peak; then the compiled network,
whose compile time is reported apart from its step time."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from binwrn.bench.case_spec import case_spec
from binwrn.bench.flops import measured_peak_tflops, train_step_flops_per_image
from binwrn.bench.measure import Case, Timing, lightning_path
from binwrn.gpucheck.profile import Profile
from binwrn.gpucheck.rows import Row
from binwrn.train.fast_path import FastPath

ARITHMETIC = {"32-true": "fp32", "bf16-mixed": "bf16"}
EPOCH_TARGET_S = 6.0  # the project's target for a 1-bit WRN-20-10 CIFAR-10 epoch on an H100
TARGET = f"epoch < {EPOCH_TARGET_S:.0f} s (H100 target, docs/benchmarks.md)"


@contextmanager
def tf32(allowed: bool | None):
    """TF32 on or off for cuDNN and matmuls (None: leave PyTorch's defaults)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if allowed is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _measure(profile: Profile, bits: int, precision: str, compiled: bool,
             allow_tf32: bool | None = None) -> tuple[Timing, int]:
    depth, width = profile.speed_net
    fast = FastPath(channels_last=profile.device == "cuda", compile=compiled)
    case = Case(depth, width, bits, profile.speed_batch, profile.speed_steps,
                profile.speed_warmup)
    device = torch.device(profile.device)
    spec = case_spec(case, device, precision, fast)  # tf32 None: as tf32() sets it
    step_flops = train_step_flops_per_image(spec.model) * profile.speed_batch  # uncompiled
    with tf32(allowed=allow_tf32):
        timing = lightning_path(spec, case, device)
    return timing, step_flops


def _describe(profile: Profile, timing: Timing, step_flops: int, peak: float | None,
              peak_name: str) -> str:
    epoch_s = timing.ms_per_step * (profile.epoch_images // profile.speed_batch) / 1000
    tflops = step_flops / (timing.ms_per_step / 1000) / 1e12
    share = f", {100 * tflops / peak:.0f} % of the measured {peak_name} peak" if peak else ""
    return (f"epoch {epoch_s:.1f} s ({timing.ms_per_step:.1f} ms/step), "
            f"{tflops:.3g} model TFLOP/s{share}")


def rows(profile: Profile, emit) -> None:
    device = torch.device(profile.device)
    peaks = {a: measured_peak_tflops(device, a) for a in ("bf16", "tf32", "fp32")}
    net = "WRN-{}-{}".format(*profile.speed_net)
    eager: dict[tuple[int, str], Timing] = {}
    # fp32: the paper's arithmetic, TF32 off; bf16: autocast with PyTorch's defaults.
    for bits in (1, 32):
        for precision, arithmetic in ARITHMETIC.items():
            fp32 = arithmetic == "fp32"
            timing, flops = _measure(profile, bits, precision, False, False if fp32 else None)
            eager[(bits, precision)] = timing
            weights = "1-bit" if bits == 1 else "fp32"
            label = "fp32 (TF32 off)" if fp32 else arithmetic
            emit(Row("speed", f"{net} {weights} weights, {label} arithmetic, eager",
                     _describe(profile, timing, flops, peaks[arithmetic], arithmetic),
                     TARGET if bits == 1 else ""))
    timing, flops = _measure(profile, 1, "32-true", False, allow_tf32=True)
    emit(Row("speed", f"{net} 1-bit weights, fp32 with TF32 convolutions, eager",
             _describe(profile, timing, flops, peaks["tf32"], "tf32"), TARGET))
    timing, flops = _measure(profile, 1, "bf16-mixed", compiled=True)
    steady = timing.ms_per_step * profile.speed_warmup / 1000
    compile_s = timing.warmup_s - steady
    emit(Row("speed", f"{net} 1-bit weights, bf16, torch.compile",
             _describe(profile, timing, flops, peaks["bf16"], "bf16"),
             TARGET))
    eager_warmup = eager[(1, "bf16-mixed")].warmup_s
    emit(Row("speed", "compile time (1-bit, bf16)",
             f"{compile_s:.1f} s ({profile.speed_warmup} warm-up steps took "
             f"{timing.warmup_s:.1f} s compiled, {eager_warmup:.1f} s eager)"))
