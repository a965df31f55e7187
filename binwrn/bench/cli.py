"""`binwrn-bench [--quick]`: measure, print the table, record it in docs/benchmarks.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

DOC_HEADER = """# Benchmarks

Written by `make bench` (`binwrn-bench`); newest first. Each section names its command,
device, library versions and date. Ratios compare two measurements from the same run; an
absolute time means something only on the device named. "binwrn" is the Lightning path
`binwrn-run` trains with; "plain" is a minimal PyTorch loop in the bench with the same model,
data, on-device augmentation, optimizer and precision. Model TFLOP/s count the convolutions'
multiply-adds (2 FLOPs each) x 3 for a training step. Each case is timed in
rounds of plain then binwrn back to back; a row gives medians with their range, and binwrn /
plain is the median of the rounds' ratios with its 95 % interval (order statistics: it assumes
nothing about the noise) and range, so two runs of the bench agree where their intervals
overlap. The whole-run row times a one-epoch `binwrn-run` and `binwrn/bench/plain_run.py`
(the same work in one plain script) as processes, start to exit.

"""


def _args() -> argparse.Namespace:
    from binwrn.bench.arguments import whole

    parser = argparse.ArgumentParser(prog="binwrn-bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="depth 10, widths 1 and 4 only (a CPU in a few minutes)")
    parser.add_argument("--depths", type=whole(8, 1000), nargs="+")
    parser.add_argument("--widths", type=whole(1, 64), nargs="+")
    parser.add_argument("--steps", type=whole(1),
                        help="timed steps per round (default 25; --quick 6)")
    parser.add_argument("--batch-size", type=whole(2, 100_000), default=125)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the command-to-first-step measurement")
    parser.add_argument("--startup-only", action="store_true",
                        help="only the command-to-first-step measurement (seconds)")
    parser.add_argument("--rounds", type=whole(1, 100), nargs=2, metavar=("LEAST", "MOST"),
                        help="rounds of plain then binwrn per case: at least LEAST, more "
                             "until the ratio's 95 %% interval is within 5 %%, at most MOST "
                             "(default 5 9; --quick 5 6)")
    parser.add_argument("--whole-run-rounds", type=whole(0, 100),
                        help="rounds of the whole-run row (a one-epoch binwrn-run against "
                             "the plain script; default 3, --quick 2; 0 skips it)")
    parser.add_argument("--phases", nargs=argparse.REMAINDER, metavar="OVERRIDE",
                        help="only: run binwrn-run once with these overrides and print where "
                             "its wall time went (time/* and its exit)")
    return parser.parse_args()


def _record(doc: Path, section: str) -> None:
    old = doc.read_text().removeprefix(DOC_HEADER) if doc.is_file() else ""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(DOC_HEADER + section + "\n" + old)


def main() -> None:
    args = _args()
    import torch

    from binwrn.bench import report, run
    from binwrn.bench.flops import measured_peak_tflops
    from binwrn.bench.spread import Spread
    from binwrn.terminal import console

    if args.startup_only:
        _startup_only(args, run.environment(torch.device("cpu")), console)
        return
    if args.phases is not None:
        from binwrn.bench.whole_run import show_phases

        show_phases(args.phases, Path(tempfile.mkdtemp(prefix="binwrn-bench-")), console)
        return
    grid = run.QUICK if args.quick else run.FULL
    depths, widths = args.depths or grid["depths"], args.widths or grid["widths"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = measured_peak_tflops(device)
    console.print(f"binwrn-bench on {run.environment(device)['device']}: depths {depths}, "
                  f"widths {widths}, fp32 and 1-bit, {args.steps or grid['steps']} timed steps "
                  "per round")
    rounds = tuple(args.rounds or grid["rounds"])
    results = run.run_grid(depths, widths, args.steps or grid["steps"], args.batch_size,
                           device, rounds=rounds, on_result=lambda r: console.print(
                               f"  {r.case.depth}-{r.case.width} {r.case.bits}-bit: "
                               f"{r.ms('binwrn').median:.1f} ms/step (plain "
                               f"{r.ms('plain').median:.1f}), binwrn / plain "
                               f"{r.ratios().text()}"))
    whole = _whole_run(args, grid, device, console)
    first_step = None if args.no_startup or whole else run.time_to_first_step(
        Path(tempfile.mkdtemp(prefix="binwrn-bench-")))
    if whole:  # the whole run's binwrn-run says it (time/to_first_step_s, median)
        first_step = Spread(tuple(t.phases["time/to_first_step_s"] for t in whole.binwrn)).median
    command = "binwrn-bench " + shlex.join(sys.argv[1:])
    section = report.markdown(results, run.environment(device), command, peak, first_step,
                              whole is not None)
    if whole:
        from binwrn.bench.whole_run import markdown as whole_markdown

        section += "\n" + whole_markdown(whole)
    console.print(section, markup=False, highlight=False)  # too wide for a terminal table
    _record(args.out, section)
    console.print(f"recorded in {args.out}")


def _whole_run(args: argparse.Namespace, grid: dict, device, console):
    """The whole-run row on a generated full-size CIFAR-10 (CPU: WRN-10-1 1-bit), or None."""
    rounds = grid["whole_run_rounds"] if args.whole_run_rounds is None \
        else args.whole_run_rounds
    if not rounds or device.type != "cpu":  # binwrn-gpucheck times whole runs on a GPU
        return None
    from binwrn.bench import whole_run
    from binwrn.bench.synthetic_cifar import write_cifar10

    work = Path(tempfile.mkdtemp(prefix="binwrn-bench-"))
    console.print(f"whole run: binwrn-run and the plain script, {rounds} round(s) of one "
                  "epoch each (WRN-10-1 1-bit, 50,000 generated CIFAR-10 images)")
    return whole_run.measure(write_cifar10(work / "data"), work, whole_run.NET, rounds,
                             on_round=lambda i, r: console.print(
                                 f"  round {i + 1}: binwrn-run {r.binwrn[-1].wall_s:.1f} s, "
                                 f"plain {r.plain_s[-1]:.1f} s"))


def _startup_only(args: argparse.Namespace, env: dict, console) -> None:
    from binwrn.bench import run
    from binwrn.bench.report import startup_line

    first_step = run.time_to_first_step(Path(tempfile.mkdtemp(prefix="binwrn-bench-")))
    line = startup_line(first_step)
    console.print(line)
    command = "binwrn-bench " + shlex.join(sys.argv[1:])
    _record(args.out, f"## {env['device']}, {env['date']}\n\nCommand: `{command}`\n\n{line}\n")
    console.print(f"recorded in {args.out}")
