"""Section `environment`: the GPU, its driver, the libraries, bf16 support and the matmul
peaks the speed section's utilisation is measured against."""

from __future__ import annotations

import platform
import subprocess
from datetime import date
from importlib import metadata

import torch

from binwrn.bench.flops import measured_peak_tflops
from binwrn.gpucheck.profile import Profile
from binwrn.gpucheck.rows import Row
from binwrn.tracking.provenance import device_name

# The libraries the check runs on; on a GPU machine some are carried as wheels (gpu-bundle).
LIBRARIES = ("torch", "lightning", "mlflow", "hydra-core", "omegaconf", "rich", "numpy")


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def driver_version() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def facts(profile: Profile) -> dict[str, str]:
    """What the heading of the recorded section names."""
    on_gpu = profile.device == "cuda"
    return {"device": device_name("gpu" if on_gpu else "cpu"),
            "driver": driver_version() if on_gpu else "-",
            "torch": torch.__version__, "cuda": torch.version.cuda or "-",
            "python": platform.python_version(), "date": date.today().isoformat(),
            **{name: version(name) for name in LIBRARIES if name != "torch"}}


def rows(profile: Profile, emit) -> None:
    f = facts(profile)
    device = torch.device(profile.device)
    on_gpu = device.type == "cuda"
    emit(Row("environment", "device", f["device"], verdict="pass" if on_gpu else "info"))
    emit(Row("environment", "driver / torch / CUDA / cuDNN",
             f"{f['driver']} / {f['torch']} / {f['cuda']} / "
             f"{torch.backends.cudnn.version() if on_gpu else '-'}"))
    emit(Row("environment", "libraries", ", ".join(
        f"{name} {f[name]}" for name in LIBRARIES if name != "torch") + f", Python {f['python']}"))
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    emit(Row("environment", "bf16 supported (CUDA)",
             ("yes" if bf16 else "no") if on_gpu else "- (a CPU: its bf16 autocast is timed "
             "under speed)", "yes on Ampere and newer (A100, H100)",
             "pass" if bf16 else ("fail" if on_gpu else "info")))
    emit(Row("environment", "TF32 allowed (cuDNN conv / matmul)",
             f"{torch.backends.cudnn.allow_tf32} / {torch.backends.cuda.matmul.allow_tf32}",
             "PyTorch defaults: True / False"))
    known = {"bf16": "~790 on an H100 SXM (80 % of its 989 datasheet peak)"}
    for arithmetic in ("bf16", "tf32", "fp32"):
        peak = measured_peak_tflops(device, arithmetic)
        emit(Row("environment", f"measured {arithmetic} matmul peak (8192^3)",
                 f"{peak:.0f} TFLOP/s" if peak else "- (a CPU)", known.get(arithmetic, "")))
