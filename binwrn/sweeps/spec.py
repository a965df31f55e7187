"""A sweep file (sweeps/<name>.yaml) read, checked and expanded into its jobs.

A sweep file names fixed overrides, one or more blocks of grid axes (each block a Cartesian
product, so a table with rows of different shapes is a list of blocks), optional seeds, the
overrides that shrink it under SMOKE=1, and how the report lays it out:

    name: p1_fig6_ablation
    overrides: [dataset=cifar100, model.depth=20, model.width=4, data.cutout=0]
    grid: {model.bits: [32, 1], schedule: [sgdr, step], bn: [learned, paper]}
    seeds: [0]                       # optional: a seed axis
    smoke: [model.depth=8, model.width=1, trainer.max_epochs=2, data.train_limit=300]
    report: {kind: ablation, rows: [model.bits, schedule, bn]}

or `blocks: [{overrides: [...], grid: {...}}, ...]` instead of `grid`. A `smoke` entry
without `=` names a list of sweeps/shared/smoke.yaml, so the sweeps that shrink alike share
one definition: `smoke: [wrn_digits, trainer.max_epochs=6]` is that list with 6 epochs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from binwrn.errors import ConfigError

REPORT_KINDS = ("table1", "table2", "ablation", "convergence", "generic", "sensitivity")
SHARED_SMOKE = Path("shared") / "smoke.yaml"  # under the shipped sweeps/ folder
_KEYS = {"name", "description", "overrides", "grid", "blocks", "seeds", "smoke", "report"}


@dataclass(frozen=True)
class Job:
    """One training job: its id, the values that label its report row, its overrides."""

    job_id: str
    labels: dict[str, object]
    overrides: list[str]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    path: Path
    text: str
    overrides: list[str]
    blocks: list[dict]
    seeds: list[int] | None
    smoke: list[str]
    report: dict = field(default_factory=dict)

    def jobs(self) -> list[Job]:
        """Every job, in file order: blocks, then the grid's product, seeds innermost."""
        jobs = []
        for block in self.blocks:
            fixed = _as_labels(block.get("overrides", []), self.path)
            axes = dict(block["grid"])
            if self.seeds is not None:
                axes["seed"] = self.seeds
            for values in itertools.product(*axes.values()):
                labels = {**fixed, **dict(zip(axes, values, strict=True))}
                overrides = [*self.overrides, *(f"{k}={_text(v)}" for k, v in labels.items())]
                jobs.append(Job(f"job_{len(jobs):03d}", labels, overrides))
        return jobs


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _as_labels(overrides: list[str], path: Path) -> dict[str, object]:
    labels = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ConfigError(f"{path}: the override {item!r} has no '=': write key=value.")
        labels[key] = yaml.safe_load(value) if value else value
    return labels


def _check_overrides(items: object, where: str, path: Path) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
        raise ConfigError(f"{path}: {where} must be a list of key=value strings.")
    return items


def _smoke(items: object, path: Path, sweeps_dir: Path) -> list[str]:
    """The smoke overrides, shared lists expanded in place; a later key=value replaces the
    same key's earlier entry where it stands (the order a shared list gives is kept)."""
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{path}: smoke must be a list of key=value strings or names of "
                          f"lists in {SHARED_SMOKE}.")
    shared = None
    expanded: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            shared = shared if shared is not None else _shared_smoke(sweeps_dir)
            if item not in shared:
                raise ConfigError(f"{path}: smoke entry {item!r} is neither key=value nor a "
                                  f"list of {SHARED_SMOKE} ({', '.join(shared) or 'none'}).")
        for entry in shared[item] if "=" not in item else [item]:
            expanded[entry.partition("=")[0]] = entry
    return list(expanded.values())


def _shared_smoke(sweeps_dir: Path) -> dict[str, list[str]]:
    path = sweeps_dir / SHARED_SMOKE
    lists = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    for name, items in lists.items():
        _check_overrides(items, f"{name}", path)
    return lists


def _check_block(block: object, index: int, path: Path) -> dict:
    where = f"blocks[{index}]" if index >= 0 else "grid"
    grid = block.get("grid") if isinstance(block, dict) else None
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{path}: {where} needs a grid of key: [values, ...].")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid axis {key} must list at least one value.")
    _check_overrides(block.get("overrides", []), f"{where}.overrides", path)
    return block


def load_sweep(name_or_path: str, sweeps_dir: Path) -> SweepSpec:
    """`p1_fig6_ablation` (looked up in sweeps_dir) or a path to a sweep file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = sweeps_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in sweeps_dir.glob("*.yaml"))
        raise ConfigError(f"No sweep file {path}: use one of {', '.join(known) or '(none)'} "
                          "or a path to a sweep YAML.")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with name, grid (or blocks) and report.")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}: use "
                          f"{', '.join(sorted(_KEYS))}.")
    if ("grid" in raw) == ("blocks" in raw):
        raise ConfigError(f"{path}: give exactly one of grid or blocks.")
    blocks = ([_check_block({"grid": raw["grid"]}, -1, path)] if "grid" in raw
              else [_check_block(b, i, path) for i, b in enumerate(raw["blocks"] or [])])
    if not blocks:
        raise ConfigError(f"{path}: blocks must list at least one block.")
    seeds = raw.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(s, int) for s in seeds)):
        raise ConfigError(f"{path}: seeds must be a list of whole numbers.")
    report = raw.get("report") or {"kind": "generic"}
    if report.get("kind", "generic") not in REPORT_KINDS:
        raise ConfigError(f"{path}: report.kind={report.get('kind')} is unknown: use one of "
                          f"{', '.join(REPORT_KINDS)}.")
    return SweepSpec(
        name=str(raw.get("name") or path.stem), path=path, text=text,
        overrides=_check_overrides(raw.get("overrides", []), "overrides", path),
        blocks=blocks, seeds=seeds, smoke=_smoke(raw.get("smoke", []), path, sweeps_dir),
        report=report,
    )
