"""`binwrn-bench`: the grid of cases, the startup measurement, and the Markdown record.

Every ratio it reports is between measurements of the same run on the same machine
(binwrn vs plain loop, 1-bit vs fp32), so they mean something on a busy CPU too; absolute
times mean something only with the device named beside them. Each case is timed in rounds,
plain then binwrn back to back, until the spread of their ratio is known (spread.py).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import torch

from binwrn.bench.case_spec import case_spec
from binwrn.bench.flops import train_step_flops_per_image
from binwrn.bench.measure import Case, Timing, lightning_path, plain_loop
from binwrn.bench.spread import Spread
from binwrn.configuration.build import build_model, seed_all
from binwrn.configuration.compose import compose
from binwrn.configuration.data import build_augment
from binwrn.tracking.provenance import device_name
from binwrn.train.fast_path import FastPath

# QUICK keeps `make bench QUICK=1` short on 2 cores (docs/benchmarks.md has its duration):
# fewer timed steps per round (the rounds give the spread) and two whole-run rounds.
QUICK = {"depths": [10], "widths": [1, 4], "steps": 6, "rounds": (5, 6),
         "whole_run_rounds": 2}
FULL = {"depths": [10, 20, 26], "widths": [1, 4, 10], "steps": 25, "rounds": (5, 9),
        "whole_run_rounds": 3}


@dataclass
class Result:
    """Every round's timing of both paths, in the order taken (A, B, A, B ...)."""

    case: Case
    binwrn_rounds: list[Timing]
    plain_rounds: list[Timing]
    step_flops: float  # per batch

    @property
    def binwrn(self) -> Timing:
        """The round whose binwrn step time is the median's (peak memory read from it)."""
        return _median_timing(self.binwrn_rounds)

    @property
    def plain(self) -> Timing:
        return _median_timing(self.plain_rounds)

    def ms(self, path: str) -> Spread:
        rounds = self.binwrn_rounds if path == "binwrn" else self.plain_rounds
        return Spread(tuple(t.ms_per_step for t in rounds))

    def ratios(self) -> Spread:
        """binwrn / plain of each round: the two were timed back to back, so a slow minute
        of the machine weighs on both."""
        return Spread(tuple(b.ms_per_step / p.ms_per_step
                            for b, p in zip(self.binwrn_rounds, self.plain_rounds, strict=True)))

    @property
    def ratio(self) -> float:
        return self.ratios().median

    def tflops(self) -> float:
        return self.step_flops / (self.ms("binwrn").median / 1000) / 1e12


def _median_timing(rounds: list[Timing]) -> Timing:
    return sorted(rounds, key=lambda t: t.ms_per_step)[(len(rounds) - 1) // 2]


def _model(case: Case):
    cfg = compose([f"model.depth={case.depth}", f"model.width={case.width}",
                   f"model.bits={case.bits}"])
    seed_all(0)
    return build_model(cfg), build_augment(cfg), cfg


def measure(case: Case, device: torch.device, rounds: tuple[int, int] = (5, 9),
            resolve: float = 0.05) -> Result:
    """Rounds of plain then binwrn, back to back, until the median ratio's 95 % interval is
    narrower than `resolve` (5 % of it) or `rounds` (least, most) are done."""
    _, _, cfg = _model(case)
    fast = FastPath.from_config(cfg.speed, "gpu" if device.type == "cuda" else "cpu")
    flops = train_step_flops_per_image(_model(case)[0]) * case.batch_size  # uncompiled
    result = Result(case, [], [], flops)
    least, most = rounds
    while len(result.plain_rounds) < most and (
            len(result.plain_rounds) < least or result.ratios().relative_width() > resolve):
        model, augment, _ = _model(case)  # the same initial weights every time
        result.plain_rounds.append(plain_loop(fast.apply(model), case, device, fast, augment))
        result.binwrn_rounds.append(lightning_path(case_spec(case, device, fast=fast), case,
                                                   device))
    return result


def time_to_first_step(work: Path) -> float | None:
    """`binwrn-run` as a user starts it; the second of two runs, so the data cache is warm."""
    from binwrn.tracking.store import open_client

    seconds = None
    for attempt in range(2):
        out = work / f"run{attempt}"
        command = [str(Path(sys.executable).with_name("binwrn-run")), "experiment=smoke",
                   "dataset=digits", "trainer.max_epochs=1", f"tracking.uri=sqlite:///{work}/m.db",
                   f"tracking.artifact_root={work}/a", f"hydra.run.dir={out}",
                   f"data.cache_dir={work}/cache", "tracking.log_checkpoint=false"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        outcome = out / "outcome.json"
        if done.returncode != 0 or not outcome.is_file():
            return None
        run_id = json.loads(outcome.read_text())["run_id"]
        metrics = open_client(f"sqlite:///{work}/m.db").get_run(run_id).data.metrics
        seconds = metrics.get("time/to_first_step_s")
    return seconds


def run_grid(depths: list[int], widths: list[int], steps: int, batch_size: int,
             device: torch.device, on_result=None, rounds: tuple[int, int] = (5, 9)
             ) -> list[Result]:
    results = []
    for depth in depths:
        for width in widths:
            for bits in (32, 1):
                case = Case(depth, width, bits, batch_size, steps)
                results.append(measure(case, device, rounds))
                if on_result:
                    on_result(results[-1])
    return results


def environment(device: torch.device) -> dict[str, str]:
    versions = {name: metadata.version(name) for name in ("torch", "lightning", "binwrn")}
    return {"device": device_name("gpu" if device.type == "cuda" else "cpu"),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "date": date.today().isoformat(), **versions}


def one_bit_over_fp32(results: list[Result]) -> dict[tuple[int, int], float]:
    by_case = {(r.case.depth, r.case.width, r.case.bits): r for r in results}
    median = {key: r.ms("binwrn").median for key, r in by_case.items()}
    return {(d, w): median[(d, w, 1)] / median[(d, w, 32)]
            for (d, w, bits) in by_case if bits == 32 and (d, w, 1) in by_case}
