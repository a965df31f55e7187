"""`binwrn-bench-loader`: images/s of the ImageNet loader alone (no model, no GPU).

Generates JPEGs of ImageNet's size in the official layout (binwrn.bench.synthetic_imagenet),
then times binwrn's own loader (binwrn.data.imagenet_loader) as `binwrn-run dataset=imagenet`
builds it: decoding, the training crop and flip, collation into uint8 batches. Each case runs
two epochs over persistent workers and times the second, so worker start-up is left out;
the best of `--rounds` is kept, since other processes on a shared machine only ever slow a
round down. Results go to docs/imagenet-loader.md with the command, machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

DOC = Path("docs/imagenet-loader.md")
MARKER = "<!-- measurements: binwrn-bench-loader writes below, newest first -->\n"


@dataclass(frozen=True)
class Case:
    decoder: str
    workers: int
    view: str  # "train" (scale jitter crop + flip) or "centre" (the single-crop test)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="binwrn-bench-loader", description=__doc__)
    parser.add_argument("--images", type=int, default=2048, help="JPEGs to generate")
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of each JPEG")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="loader processes of the main case (default: usable cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="keep the JPEGs here (reused if present)")
    parser.add_argument("--out", type=Path, default=DOC)
    parser.add_argument("--gpu-rate", type=float, nargs=2, default=(3000.0, 5000.0),
                        metavar=("LOW", "HIGH"), help="the estimated GPU images/s to size "
                        "the loader for (docs/imagenet-loader.md says where it comes from)")
    return parser.parse_args()


def _jpegs(folder: Path, count: int, size: str):
    from binwrn.bench.synthetic_imagenet import write_jpeg_tree
    from binwrn.data.imagenet import list_imagenet

    classes = 10
    if not (folder / "train").is_dir():
        width, height = (int(v) for v in size.split("x"))
        write_jpeg_tree(folder, classes, -(-count // classes), 1, ((width, height),))
    return list_imagenet(folder, classes)[0]


def _epoch_rate(loader) -> float:
    """Images/s of one full pass over a loader whose workers are already running."""
    start, images = time.perf_counter(), 0
    for batch, _ in loader:
        images += len(batch)
    return images / (time.perf_counter() - start)


def measure(files, crops, case: Case, batch_size: int, rounds: int) -> float:
    import torch

    from binwrn.data.imagenet_loader import StreamingImageData

    torch.manual_seed(0)
    crops = replace(crops, decoder=case.decoder)
    data = StreamingImageData(files, files, crops, batch_size, batch_size, case.workers)
    best = 0.0
    for _ in range(rounds):
        if case.view == "train":
            loader = data.train_dataloader()  # persistent workers: epoch 2 reuses them
            _epoch_rate(loader)
            best = max(best, _epoch_rate(loader))
        else:
            best = max(best, _epoch_rate(data.val_dataloader()))
    return best


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() \
            else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {len(os.sched_getaffinity(0))} usable cores"


def _section(command: str, results: dict[Case, float], files, args, per_core: float) -> str:
    import torch
    import torchvision

    rows = "\n".join(f"| {c.view} | {c.decoder} | {c.workers} | {rate:,.0f} | "
                     f"{rate / c.workers:,.0f} |" for c, rate in results.items())
    low, high = args.gpu_rate
    mean_kb = sum(os.path.getsize(p) for p in files.paths) / len(files) / 1e3
    return (
        f"## {_machine()}, {date.today().isoformat()}\n\nCommand: `{command}`\n\n"
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
        f"{platform.python_version()}; {len(files):,} generated JPEGs of {args.size} "
        f"(mean {mean_kb:.0f} KB), batch {args.batch_size}, best of {args.rounds} rounds, "
        f"second epoch timed; crops 224x224 (train: scale jitter + flip; centre: resize 256, "
        f"centre crop).\n\n| view | decoder | workers | images/s | per worker |\n"
        f"|---|---|---|---|---|\n{rows}\n\n"
        f"At {per_core:,.0f} training images/s per core, a GPU taking {low:,.0f}-{high:,.0f} "
        f"images/s (an estimate, see above) needs about {low / per_core:.0f}-"
        f"{high / per_core:.0f} such cores for loading alone.\n"
    )


def _record(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.is_file() else f"# ImageNet loader throughput\n\n{MARKER}"
    head, _, old = text.partition(MARKER)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + MARKER + "\n" + section + ("\n" + old.lstrip("\n") if old else ""))


def main() -> None:
    args = _args()
    from binwrn.data.imagenet_transforms import CropSettings
    from binwrn.terminal import console

    folder = args.dir or Path(tempfile.mkdtemp(prefix="binwrn-loader-"))
    console.print(f"binwrn-bench-loader: {args.images} JPEGs of {args.size} in {folder}")
    files = _jpegs(folder, args.images, args.size)
    crops = CropSettings()  # conf/dataset/imagenet.yaml's defaults
    cases = [Case("torchvision", 1, "train"), Case("pil", 1, "train"),
             Case("torchvision", args.workers, "train"), Case("pil", args.workers, "train"),
             Case("torchvision", args.workers, "centre")]
    results = {}
    for case in dict.fromkeys(cases):
        results[case] = measure(files, crops, case, args.batch_size, args.rounds)
        console.print(f"  {case.view:6s} {case.decoder:11s} {case.workers} workers: "
                      f"{results[case]:,.0f} images/s")
    per_core = max(rate / c.workers for c, rate in results.items()
                   if c.view == "train" and c.decoder == crops.decoder)
    command = "binwrn-bench-loader " + shlex.join(sys.argv[1:])
    _record(args.out, _section(command.strip(), results, files, args, per_core))
    console.print(f"recorded in {args.out}")
