"""`binwrn-gpucheck [--cpu]`: the GPU path proven in one call (issue 21), as a verdict table
printed and recorded newest first in docs/gpu-check.md (GPU mode) and in OUT/gpu-check.md.

Each section runs in its own process under its time limit (profile.py states the estimate);
one that overruns is stopped and its finished rows kept. `--cpu` runs the same steps shrunk
(tiny nets, the embedded digits, 3 epochs) and marks every row cpu-shrunk.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import binwrn
from binwrn.gpucheck import gpu_tests
from binwrn.gpucheck import profile as profiles
from binwrn.gpucheck.process import run_limited
from binwrn.gpucheck.rows import (
    SECTIONS,
    Row,
    append_row,
    markdown,
    passed,
    read_rows,
    record,
    rich_table,
)

REPO = Path(binwrn.__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="binwrn-gpucheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true",
                        help="the same steps shrunk, on the CPU; every row cpu-shrunk")
    parser.add_argument("--data-root", type=Path,
                        help="the extracted cifar10-png.tar (train/, test/); needed on a GPU")
    parser.add_argument("--out", type=Path, help="rows, log, MLflow store (mlflow.db), .bwn "
                        "and gpu-check.md; default $OUT, else gpucheck-out/<time>")
    parser.add_argument("--work", type=Path, help="checkpoints, artifacts, data cache "
                        "(default: a new folder under the system's temp folder)")
    parser.add_argument("--doc", type=Path, help="also record the table here (default "
                        "docs/gpu-check.md on a GPU, none with --cpu)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    return parser.parse_args()


def _refuse(sentence: str) -> None:
    from binwrn.terminal import show_error

    show_error(sentence, "binwrn-gpucheck")
    sys.exit(2)


def _check_inputs(args: argparse.Namespace) -> None:
    import torch

    if not args.cpu and not torch.cuda.is_available():
        _refuse("No CUDA device is visible: run this on a GPU machine, or `make gpu-check "
                "CPU=1` for the shrunk CPU version.")
    root = args.data_root
    if not args.cpu and "accuracy" in args.sections and not (
            root and (root / "train").is_dir() and (root / "test").is_dir()):
        _refuse(f"--data-root {root} is not the extracted cifar10-png.tar (train/ and test/ "
                "folders): stage it as docs/gpu.md says, or pass --cpu.")


def _run(name: str, profile: profiles.Profile, out: Path, work: Path, data_root: Path | None,
         log) -> None:
    limit = profile.limits_s[name]
    if name == "gpu_tests":
        rows = gpu_tests.rows(profile.device, out, REPO, limit, log)
        for row in rows:
            append_row(out / "rows.jsonl", row)
        return
    command = [sys.executable, "-m", "binwrn.gpucheck.section", name,
               "cpu" if profile.shrunk else "gpu", str(out), str(work),
               *([str(data_root)] if data_root else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if run_limited(command, limit, log, env) is None:
        append_row(out / "rows.jsonl", Row(name, "time limit", f"stopped after {limit} s",
                                           verdict="timeout"))


def main() -> None:
    args = _args()
    _check_inputs(args)
    from rich.console import Console

    from binwrn.gpucheck.environment import facts

    profile = profiles.CPU if args.cpu else profiles.GPU
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = (args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT")
                        else Path("gpucheck-out") / stamp)).resolve()
    work = (args.work or Path(tempfile.mkdtemp(prefix="binwrn-gpucheck-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    (out / "rows.jsonl").unlink(missing_ok=True)
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log: no wrapping
    started = time.perf_counter()
    budget = sum(profile.limits_s[s] for s in args.sections)
    console.print(f"binwrn-gpucheck ({profile.name}): {', '.join(args.sections)}; limits add "
                  f"to {budget} s; output in {out}")
    with (out / "gpucheck.log").open("a") as log:
        for name in args.sections:
            console.print(f"  {name} (limit {profile.limits_s[name]} s) ...")
            _run(name, profile, out, work, args.data_root, log)
            log.flush()
    (out / "mlflow.db.init-lock").unlink(missing_ok=True)  # OUT brings back 8 files at most
    rows = read_rows(out / "rows.jsonl")
    if profile.shrunk:
        rows = [r.shrunk() for r in rows]
    wall = time.perf_counter() - started
    f = facts(profile)
    command = "binwrn-gpucheck " + shlex.join(sys.argv[1:])
    console.print(rich_table(rows, f"binwrn-gpucheck ({profile.name}) on {f['device']}"))
    verdict = "all rows pass" if passed(rows) else "SOME ROWS FAIL"
    if profile.shrunk:
        verdict = "every step ran (cpu-shrunk)" if passed(rows) else "A STEP BROKE"
    console.print(f"{verdict}; {wall:.0f} s in all")
    heading = f"{f['device']}, {f['date']}" + (" (cpu-shrunk)" if profile.shrunk else "")
    preamble = [f"Command: `{command}`", "",
                f"driver {f['driver']}, torch {f['torch']} (CUDA {f['cuda']}), lightning "
                f"{f['lightning']}, mlflow {f['mlflow']}, hydra-core {f['hydra-core']}, "
                f"Python {f['python']}; profile {profile.name}; wall time {wall:.0f} s "
                f"(section limits add to {budget} s). {verdict}."]
    section = markdown(rows, heading, preamble)
    doc = args.doc or (None if profile.shrunk else REPO / "docs" / "gpu-check.md")
    if doc is not None:  # OUT/gpu-check.md: the whole updated doc, to copy back from a GPU
        record(doc, section)
        shutil.copyfile(doc, out / "gpu-check.md")
        console.print(f"recorded in {doc} and {out / 'gpu-check.md'}")
    else:
        record(out / "gpu-check.md", section)
        console.print(f"recorded in {out / 'gpu-check.md'}")
    sys.exit(0 if passed(rows) else 1)


if __name__ == "__main__":
    main()
