"""A Hydra callback that ends a `binwrn-run -m` with one table of its jobs side by side.

Each job writes outcome.json into its folder (binwrn.cli), whichever launcher ran it, so the
table is read from the sweep folder once every job has ended. binwrn-sweep's launches are
left out: binwrn-sweep prints its own summary of the same jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from binwrn.terminal import show_job_table


def read_outcomes(sweep_dir: Path) -> list[dict]:
    """The outcome.json of every job under `sweep_dir`, by job number."""
    outcomes = [json.loads(p.read_text()) for p in sweep_dir.glob("*/outcome.json")]
    return sorted(outcomes, key=lambda o: (o.get("number") is None, o.get("number") or 0))


class JobTable(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if OmegaConf.select(config, "sweep.parent_run_id"):
            return
        outcomes = read_outcomes(Path(config.hydra.sweep.dir))
        if outcomes:
            show_job_table(outcomes)
