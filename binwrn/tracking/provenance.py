"""Facts about where and with what a run was made, recorded as MLflow tags."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("binwrn", "torch", "torchvision", "lightning", "hydra-core", "mlflow", "numpy")


def git_state(start: Path) -> dict[str, str]:
    """Commit and dirty flag of the checkout holding `start`, if it is one."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=start, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"git.commit": git("rev-parse", "HEAD"),
                "git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no")))}
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown"}


def library_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[f"version.{name}"] = "not installed"
    return versions


def device_name(accelerator: str = "auto") -> str:
    if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda"):
        return torch.cuda.get_device_name(0)
    return f"cpu: {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def provenance_tags(accelerator: str = "auto") -> dict[str, str]:
    return {
        **git_state(Path(__file__).resolve().parent),
        **library_versions(),
        "device": device_name(accelerator),
        "python": platform.python_version(),
    }
