"""`make ui`: one uvicorn worker by default, and the printed link opens the binwrn experiment's
Model training view by its real id (not always 1), read without importing MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def _ui_link(store: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; runpy.run_module('binwrn.tracking.ui_link', "
         "run_name='__main__'); print(sorted(m for m in sys.modules if m in ('mlflow', "
         "'torch')))", str(store), "5001"],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_ui_link_names_the_binwrn_experiments_id(fresh_store: Path):
    client = MlflowClient(f"sqlite:///{fresh_store}")
    client.create_experiment("someone-else")
    experiment = client.create_experiment("binwrn")
    assert experiment != "1"
    out = _ui_link(fresh_store)
    assert out.splitlines() == [
        f"Open http://127.0.0.1:5001/#/experiments/{experiment}/runs"
        "?workflowType=machine_learning", "[]"]  # no MLflow, no torch imported
    client.create_registered_model("wrn")
    assert "Registered models: http://127.0.0.1:5001/#/models" in _ui_link(fresh_store)


def test_ui_link_without_runs_says_so(tmp_path: Path):
    assert _ui_link(tmp_path / "mlflow.db").startswith(
        f"No experiment binwrn in {tmp_path / 'mlflow.db'} yet")


def test_make_ui_runs_one_worker_unless_told():
    def ui_commands(*args: str) -> str:
        return subprocess.run(["make", "-n", "ui", *args], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    assert "--workers 1" in ui_commands() and "binwrn.tracking.ui_link" in ui_commands()
    assert "--workers 3" in ui_commands("WORKERS=3")
