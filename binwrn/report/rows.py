"""Runs grouped into table rows, with mean and spread over the seeds that share a row, and
fp32/1-bit pairs of otherwise identical runs (the gap of paper 1 Fig. 1)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from binwrn.report.runs import RunResult

# Keys that never separate two runs of the same setting.
SEED = "seed"
BITS = "model.bits"
DATASET = "dataset.name"


def spread(values: list[float]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation, n); no deviation from a single value."""
    if not values:
        return None, None, 0
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std, len(values)


def bits_text(bits: object) -> str:
    return "fp32" if str(bits) == "32" else f"{bits}-bit"


def label_text(key: str, value: object) -> str:
    return bits_text(value) if key == BITS else f"{key}={value}"


@dataclass(frozen=True)
class Row:
    label: tuple[tuple[str, object], ...]
    runs: tuple[RunResult, ...]

    @property
    def sample(self) -> RunResult:
        """A run of the row, for the settings its runs share."""
        return self.runs[0]

    @property
    def stats(self) -> tuple[float | None, float | None, int]:
        return spread([r.final_error for r in self.runs])

    @property
    def top5_stats(self) -> tuple[float | None, float | None, int]:
        """Over the runs that logged a top-5 error (those with more than 5 classes)."""
        return spread([r.final_top5_error for r in self.runs if r.final_top5_error is not None])

    def metric_mean(self, key: str) -> float | None:
        """The mean of a metric's latest value over the runs that logged it."""
        return spread([r.metrics[key] for r in self.runs if key in r.metrics])[0]

    @property
    def text(self) -> str:
        return ", ".join(label_text(k, v) for k, v in self.label) or "all runs"


def group_rows(runs: tuple[RunResult, ...], keys: tuple[str, ...]) -> list[Row]:
    """One row per combination of the keys' values, in the order rows first appear."""
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(tuple((k, run.value(k)) for k in keys), []).append(run)
    return [Row(label, tuple(members)) for label, members in groups.items()]


@dataclass(frozen=True)
class BitsPair:
    """fp32 and 1-bit runs whose params differ in nothing else (seeds aside)."""

    fp32: tuple[RunResult, ...]
    one_bit: tuple[RunResult, ...]

    @property
    def sample(self) -> RunResult:
        return self.fp32[0]

    @property
    def fp32_error(self) -> float:
        return spread([r.final_error for r in self.fp32])[0]

    @property
    def one_bit_error(self) -> float:
        return spread([r.final_error for r in self.one_bit])[0]

    @property
    def gap(self) -> float:
        return self.one_bit_error - self.fp32_error

    @property
    def settings(self) -> dict[str, str]:
        """The params both sides share (all but bits and seed)."""
        return {k: v for k, v in self.sample.params.items() if k not in (BITS, SEED)}


def _set_by_dataset(pairs: list[BitsPair], key: str) -> bool:
    """Whether `key` takes one value per data set (a recipe the data set brings, as BN and
    weight decay in paper 1's Table 2), so the data set's name already says it."""
    datasets = {pair.settings.get(DATASET) for pair in pairs}
    return len(datasets) > 1 and all(
        len({p.settings.get(key) for p in pairs if p.settings.get(DATASET) == d}) == 1
        for d in datasets)


def varying_settings(pairs: list[BitsPair], ignore: tuple[str, ...] = ()) -> list[str]:
    """Params that tell pairs apart, for labelling them (e.g. schedule and BN in Fig. 6);
    not those the data set alone decides."""
    keys = sorted({k for pair in pairs for k in pair.settings if k not in ignore})
    return [k for k in keys if len({pair.settings.get(k) for pair in pairs}) > 1
            and not _set_by_dataset(pairs, k)]


def settings_text(pair: BitsPair, keys: list[str]) -> str:
    return ", ".join(f"{k}={pair.settings.get(k)}" for k in keys)


def bits_pairs(runs: tuple[RunResult, ...]) -> list[BitsPair]:
    groups: dict[tuple, dict[int, list[RunResult]]] = {}
    for run in runs:
        if run.bits in (1, 32):
            shared = tuple(sorted((k, v) for k, v in run.params.items() if k not in (BITS, SEED)))
            groups.setdefault(shared, {1: [], 32: []})[run.bits].append(run)
    return [BitsPair(tuple(g[32]), tuple(g[1])) for g in groups.values() if g[32] and g[1]]
