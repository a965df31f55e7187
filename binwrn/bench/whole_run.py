"""binwrn-bench's whole-run row: a one-epoch `binwrn-run` against the plain script doing the
same work (plain_run.py), each a process timed from its start to its exit, in rounds of plain
then binwrn back to back. The binwrn run's own time/* metrics say where its wall time went;
its exit is timed here, from the run's recorded end (outcome.json's `ended_at`) to the
moment the process is gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from binwrn.bench.spread import Spread

BIN = Path(sys.executable).parent
NET = (10, 1, 1)  # depth, width, bits: the 1-bit WRN-10-1 of the real-data figures


@dataclass
class RunTiming:
    """One binwrn-run: the process's wall time, its time/* metrics and its exit."""

    wall_s: float
    exit_s: float
    phases: dict[str, float]

    @property
    def loop_s(self) -> float:
        return self.phases["time/loop_s"]

    def outside_over_loop(self) -> float:
        """The share of the loop's time the run spent outside it (the process's wall time)."""
        return (self.wall_s - self.loop_s) / self.loop_s


@dataclass
class WholeRun:
    binwrn: list[RunTiming] = field(default_factory=list)
    plain_s: list[float] = field(default_factory=list)

    def ratios(self) -> Spread:
        return Spread(tuple(b.wall_s / p for b, p in zip(self.binwrn, self.plain_s,
                                                         strict=True)))


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def binwrn_run(overrides: list[str], work: Path, name: str) -> RunTiming:
    """`binwrn-run` with `overrides` into a store and folders under `work`, timed."""
    from binwrn.tracking.store import open_client

    out, uri = work / name, f"sqlite:///{work}/mlflow.db"
    command = [str(BIN / "binwrn-run"), *overrides, f"tracking.uri={uri}",
               f"tracking.artifact_root={work}/artifacts", f"hydra.run.dir={out}"]
    started = time.time()
    wall = _timed(command)
    exited = started + wall
    outcome = json.loads((out / "outcome.json").read_text())
    metrics = open_client(uri).get_run(outcome["run_id"]).data.metrics
    return RunTiming(wall, exited - outcome["ended_at"],
                     {k: v for k, v in metrics.items() if k.startswith("time/")})


def prepare_store(work: Path) -> None:
    """Create the store and experiment before timing: a user's store exists already."""
    from binwrn.tracking.store import artifact_location, ensure_experiment, open_client

    uri = f"sqlite:///{work}/mlflow.db"
    ensure_experiment(open_client(uri), "binwrn",
                      artifact_location(uri, str(work / "artifacts"), "binwrn"))


def measure(data_root: Path, work: Path, net: tuple[int, int, int], rounds: int,
            on_round=None) -> WholeRun:
    """`rounds` of (plain script, binwrn-run) on the CIFAR-10 batches under `data_root`."""
    depth, width, bits = net
    overrides = ["dataset=cifar10", f"data.root={data_root}", "data.verify_checksums=false",
                 f"data.cache_dir={work}/cache", f"model.depth={depth}",
                 f"model.width={width}", f"model.bits={bits}", "trainer.max_epochs=1",
                 "resume=false"]
    plain = [sys.executable, "-m", "binwrn.bench.plain_run", str(data_root), str(depth),
             str(width), str(bits)]
    prepare_store(work)
    result = WholeRun()
    for i in range(rounds):
        result.plain_s.append(_timed(plain))
        result.binwrn.append(binwrn_run(overrides, work, f"run{i}"))
        if on_round:
            on_round(i, result)
    return result


def _phase_cells(t: RunTiming) -> str:
    from binwrn.terminal import phase_line

    return f"{phase_line(t.phases)}, exit {t.exit_s:.1f} s"


def markdown(result: WholeRun) -> str:
    """The whole-run row, each round's phases, and the outside-the-loop share."""
    ratios = result.ratios()
    depth, width, bits = NET
    binwrn = Spread(tuple(t.wall_s for t in result.binwrn))
    plain = Spread(tuple(result.plain_s))
    outside = Spread(tuple(t.outside_over_loop() for t in result.binwrn))
    lines = [f"Whole run, one epoch of WRN-{depth}-{width} {bits}-bit on 50,000 generated "
             "CIFAR-10 images (train, test, recompute BN, test), each a process timed from "
             "start to exit, plain then binwrn back to back:", "",
             "| row | binwrn-run (s) | plain script (s) | binwrn / plain | time outside the "
             "loop / loop |", "|---|---|---|---|---|",
             f"| binwrn-run | {binwrn.median:.1f} ({binwrn.low:.1f}-{binwrn.high:.1f}) | "
             f"{plain.median:.1f} ({plain.low:.1f}-{plain.high:.1f}) | {ratios.text()} | "
             f"{outside.text(2)} |", ""]
    lines += [f"- round {i + 1}: {_phase_cells(t)}" for i, t in enumerate(result.binwrn)]
    return "\n".join(lines) + "\n"


def show_phases(overrides: list[str], work: Path, console) -> RunTiming:
    """`binwrn-bench --phases OVERRIDE ...`: one binwrn-run, where its time went."""
    prepare_store(work)
    timing = binwrn_run(overrides, work, "run")
    console.print(f"binwrn-run {' '.join(overrides)}")
    console.print(f"process {timing.wall_s:.1f} s: {_phase_cells(timing)}")
    console.print(f"outside the loop: {timing.wall_s - timing.loop_s:.1f} s = "
                  f"{100 * timing.outside_over_loop():.0f} % of the loop's "
                  f"{timing.loop_s:.1f} s")
    return timing
