"""A sweep's jobs written as Hydra config files, so any Hydra launcher can run them.

Hydra's sweepers only form Cartesian products, while a paper table is a list of rows of
different shapes. So each job becomes one option of a config group `sweep_job` (a file
`<plan>/sweep_job/job_007.yaml` holding the job's overrides), and the launch is a plain
Hydra sweep over that one group: `binwrn-run -m +sweep_job=job_000,job_001,...` with the
plan folder on Hydra's search path. Basic, joblib and submitit launchers all take that.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from binwrn.errors import ConfigError
from binwrn.sweeps.spec import Job

GROUP = "sweep_job"


def _config_groups(conf_dir: Path) -> set[str]:
    return {p.name for p in conf_dir.iterdir() if p.is_dir()}


def _set_dotted(tree: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def job_config(job: Job, groups: set[str], stands_for: str | None) -> dict:
    """The job's overrides as a `_global_` config: group choices in its defaults list."""
    defaults, values = [], {}
    for override in job.overrides:
        key, _, text = override.partition("=")
        if key.startswith(("+", "~")):
            raise ConfigError(f"{override}: sweep files set existing keys only; drop the "
                              f"{key[0]} prefix.")
        if key in groups:
            defaults.append({f"override /{key}": text})
        else:
            _set_dotted(values, key, yaml.safe_load(text) if text else text)
    values.setdefault("sweep", {}).update({"job": job.job_id, "stands_for": stands_for})
    return {"defaults": defaults, **values} if defaults else values


def write_plan(jobs: list[Job], plan_dir: Path, conf_dir: Path, smoke: bool) -> Path:
    """One file per job under plan_dir/sweep_job/; returns plan_dir for hydra.searchpath."""
    folder = plan_dir / GROUP
    folder.mkdir(parents=True, exist_ok=True)
    groups = _config_groups(conf_dir)
    for job in jobs:
        # Under SMOKE=1 every job shrinks to the same tiny net; naming the full-size job it
        # stands for keeps the rows distinct runs (the key is part of the config hash).
        stands_for = " ".join(job.overrides) if smoke else None
        body = yaml.safe_dump(job_config(job, groups, stands_for), sort_keys=False)
        (folder / f"{job.job_id}.yaml").write_text(f"# @package _global_\n{body}")
    return plan_dir
