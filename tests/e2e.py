"""Run `binwrn-run` as a user would (a subprocess) and read back what it stored."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

BINWRN_RUN = Path(sys.executable).with_name("binwrn-run")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    store: Path

    def runs(self):
        if not self.store.exists():
            return []
        client = MlflowClient(f"sqlite:///{self.store}")
        experiments = client.search_experiments()
        return client.search_runs([e.experiment_id for e in experiments]) if experiments else []


def binwrn_run(tmp: Path, *overrides: str, timeout: int = 600, env: dict | None = None) -> Outcome:
    """binwrn-run with its store, artifacts, outputs and cache inside `tmp`."""
    store = tmp / "mlflow.db"
    defaults = {
        "tracking.uri": f"sqlite:///{store}",
        "tracking.artifact_root": str(tmp / "artifacts"),
        "data.cache_dir": str(tmp / "cache"),
        "hydra.sweep.dir" if "-m" in overrides else "hydra.run.dir": str(tmp / "out"),
    }
    given = {o.split("=", 1)[0] for o in overrides}
    args = [str(BINWRN_RUN), *overrides,
            *(f"{k}={v}" for k, v in defaults.items() if k not in given)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                          env={**os.environ, **(env or {})})
    return Outcome(done.returncode, done.stdout, done.stderr, store)
