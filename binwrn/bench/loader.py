"""`binwrn-bench-loader`: images/s of the ImageNet loader alone (no model, no GPU).

Generates JPEGs of ImageNet's size in the official layout (binwrn.bench.synthetic_imagenet),
then times binwrn's own loader (binwrn.data.imagenet_loader) as `binwrn-run dataset=imagenet`
builds it: decoding, the training crop and flip, collation into uint8 batches. A training
case's persistent workers run one untimed epoch first, so their start-up is left out; each
round then times one epoch of every case, and the best of `--rounds` is kept, since other
processes on a shared machine only ever slow a round down. Two rates: images/s of wall-clock
time (what this machine delivered), and images per CPU-second of the bench and its workers
(one core's rate, which other processes on the machine barely change: the figure to size a
GPU machine's cores by). Results go to docs/imagenet-loader.md with the command, machine,
load average and date.
"""

from __future__ import annotations

import argparse
import math
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
    from binwrn.bench.arguments import picture_size, whole

    parser = argparse.ArgumentParser(prog="binwrn-bench-loader", description=__doc__)
    parser.add_argument("--images", type=whole(1), default=2048, help="JPEGs to generate")
    parser.add_argument("--size", type=picture_size, default="500x375",
                        help="WIDTHxHEIGHT of each JPEG")
    parser.add_argument("--batch-size", type=whole(1, 100_000), default=64)
    parser.add_argument("--workers", type=whole(0, 1024), default=len(os.sched_getaffinity(0)),
                        help="loader processes of the main case (default: usable cores)")
    parser.add_argument("--rounds", type=whole(1, 1000), default=5)
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


def _cpu_seconds() -> float:
    """CPU time of this process and its loader workers: running ones and ended ones."""
    import psutil

    mine, finished = os.times(), 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            finished += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return mine.user + mine.system + mine.children_user + mine.children_system + finished


@dataclass(frozen=True)
class Rate:
    wall: float  # images per second of wall-clock time
    cpu: float  # images per CPU-second (this process and its workers): one core's rate

    def best(self, other: Rate) -> Rate:
        return Rate(max(self.wall, other.wall), max(self.cpu, other.cpu))


def _epoch_rate(loader) -> Rate:
    """One full pass over a loader whose persistent workers (if any) are already running."""
    start, cpu, images = time.perf_counter(), _cpu_seconds(), 0
    for batch, _ in loader:
        images += len(batch)
    return Rate(images / (time.perf_counter() - start), images / (_cpu_seconds() - cpu))


def measure(files, crops, cases: list[Case], batch_size: int, rounds: int,
            on_round=lambda round_, rates: None) -> dict[Case, Rate]:
    """Best rates per case over `rounds`; every round runs every case once, so a busy
    spell on a shared machine slows one round of all of them, not all rounds of one."""
    import torch

    from binwrn.data.imagenet_loader import StreamingImageData

    torch.manual_seed(0)
    loaders = {}
    for case in cases:
        data = StreamingImageData(files, files, replace(crops, decoder=case.decoder),
                                  batch_size, batch_size, case.workers)
        loaders[case] = data.train_dataloader() if case.view == "train" else \
            data.val_dataloader()
        if case.view == "train":
            _epoch_rate(loaders[case])  # starts its persistent workers: not timed
    best = dict.fromkeys(cases, Rate(0.0, 0.0))
    for round_ in range(rounds):
        rates = {case: _epoch_rate(loader) for case, loader in loaders.items()}
        best = {case: best[case].best(rate) for case, rate in rates.items()}
        on_round(round_, rates)
    return best


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() \
            else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {len(os.sched_getaffinity(0))} usable cores"


def _section(command: str, results: dict[Case, Rate], files, args, per_core: float) -> str:
    import torch
    import torchvision

    rows = "\n".join(f"| {c.view} | {c.decoder} | {c.workers} | {rate.wall:,.0f} | "
                     f"{rate.cpu:,.0f} |" for c, rate in results.items())
    low, high = args.gpu_rate
    mean_kb = sum(os.path.getsize(files.path(i)) for i in range(len(files))) / len(files) / 1e3
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"## {_machine()}, {date.today().isoformat()}\n\nCommand: `{command}`\n\n"
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
        f"{platform.python_version()}; {len(files):,} generated JPEGs of {args.size} "
        f"(mean {mean_kb:.0f} KB), batch {args.batch_size}, best of {args.rounds} rounds of "
        f"one epoch each, workers already started; crops 224x224 (train: scale jitter + "
        f"flip; centre: resize 256, centre crop). Load average at the end: {load}.\n\n"
        f"| view | decoder | workers | images/s (wall clock) | images per CPU-second |\n"
        f"|---|---|---|---|---|\n{rows}\n\n"
        f"At {per_core:,.0f} training images per CPU-second, a GPU taking {low:,.0f}-"
        f"{high:,.0f} images/s (an estimate, see above) needs about "
        f"{math.ceil(low / per_core)}-{math.ceil(high / per_core)} such cores for loading "
        f"alone.\n"
    )


def _record(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.is_file() else f"# ImageNet loader throughput\n\n{MARKER}"
    head, _, old = text.partition(MARKER)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + MARKER + "\n" + section + ("\n" + old.lstrip("\n") if old else ""))


def main() -> None:
    args = _args()
    from binwrn.data.imagenet_transforms import DECODERS, CropSettings
    from binwrn.terminal import console

    folder = args.dir or Path(tempfile.mkdtemp(prefix="binwrn-loader-"))
    console.print(f"binwrn-bench-loader: {args.images} JPEGs of {args.size} in {folder}")
    files = _jpegs(folder, args.images, args.size)
    crops = CropSettings()  # conf/dataset/imagenet.yaml's defaults
    cases = [*(Case(decoder, 1, "train") for decoder in DECODERS),
             *(Case(decoder, args.workers, "train") for decoder in DECODERS),
             Case(crops.decoder, args.workers, "centre")]
    cases = list(dict.fromkeys(cases))
    results = measure(files, crops, cases, args.batch_size, args.rounds, on_round=lambda i, r:
                      console.print(f"  round {i + 1}: " + ", ".join(
                          f"{c.view} {c.decoder} x{c.workers} {rate.wall:,.0f}/s "
                          f"({rate.cpu:,.0f}/CPU-s)" for c, rate in r.items())))
    for case, rate in results.items():
        console.print(f"  best: {case.view:6s} {case.decoder:11s} {case.workers} workers: "
                      f"{rate.wall:,.0f} images/s, {rate.cpu:,.0f} per CPU-second")
    per_core = max(rate.cpu for c, rate in results.items()
                   if c.view == "train" and c.decoder == crops.decoder)
    command = "binwrn-bench-loader " + shlex.join(sys.argv[1:])
    _record(args.out, _section(command.strip(), results, files, args, per_core))
    console.print(f"recorded in {args.out}")
