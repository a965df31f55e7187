"""Bytes of the served 1-bit model (the `.bwn` plus the pyfunc wrapper binwrn-export --register
logs) beside the fp32 model of the same net, measured on disk (docs/deploying.md). Sizes do not depend on training, so untrained CIFAR-10 nets are measured.

    uv run python docs/served_size.py            # WRN-10-1 and WRN-20-10
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pyfunc
import mlflow.pytorch
import torch

from binwrn.data import load_splits
from binwrn.export.format import encode, write_bytes
from binwrn.export.job import ExportResult
from binwrn.export.mlflow_model import as_pixels, model_logging, pyfunc_arguments
from binwrn.export.pack import pack_wrn
from binwrn.models import WideResNet, size_summary


def folder_bytes(folder: Path, keep=lambda p: True) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and keep(p))


def measure(depth: int, width: int, tmp: Path) -> dict[str, int]:
    kwargs = {"depth": depth, "width": width, "num_classes": 10}
    binary = WideResNet(**kwargs, bits=1).eval()
    blob, layout = encode(pack_wrn(binary, {**kwargs, "bits": 1}))
    bwn = tmp / f"wrn{depth}-{width}.bwn"
    write_bytes(bwn, blob)
    _, test = load_splits("digits", None, 10, test_limit=2)  # 32x32x3 like CIFAR's
    served = tmp / f"served{depth}-{width}"
    with model_logging():  # as binwrn-export --register logs it
        mlflow.pyfunc.save_model(served, **pyfunc_arguments(
            bwn, as_pixels(test.model_inputs()), ExportResult(size_summary(binary), layout), tmp))
    fp32 = WideResNet(**kwargs, bits=32).eval()
    torch.save(fp32.state_dict(), tmp / "fp32.pt")
    fp32_served = tmp / f"fp32-{depth}-{width}"
    mlflow.pytorch.save_model(fp32, fp32_served, pip_requirements=["torch"],
                              serialization_format="pickle")
    return {"bwn": layout.total,
            "wrapper": folder_bytes(served, lambda p: p.suffix != ".bwn"
                                    and "input_example" not in p.name),
            "fp32_state_dict": (tmp / "fp32.pt").stat().st_size,
            "fp32_mlflow": folder_bytes(fp32_served)}


def main() -> None:
    print("| net | .bwn | pyfunc wrapper | served 1-bit model | fp32 state_dict | "
          "fp32 MLflow pytorch model | fp32 / served |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for depth, width in ((10, 1), (20, 10)):
            m = measure(depth, width, Path(tmp))
            served = m["bwn"] + m["wrapper"]
            print(f"| WRN-{depth}-{width} | {m['bwn']:,} | {m['wrapper']:,} | {served:,} | "
                  f"{m['fp32_state_dict']:,} | {m['fp32_mlflow']:,} | "
                  f"x{m['fp32_mlflow'] / served:.1f} |")


if __name__ == "__main__":
    main()
