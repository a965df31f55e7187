"""Shared fixtures. Creating an MLflow SQLite store runs its schema migrations (seconds),
so one empty store is made per session and copied wherever a test needs a fresh one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# `make test` runs two pytest-xdist workers on CI's 2 cores. With OpenMP's default of one
# thread per core, the trainings of the two (in the worker or in its binwrn-run
# subprocesses, which inherit this) spin against each other on 4 threads; one thread each
# keeps both cores busy. Set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates the schema
    return path


@pytest.fixture
def fresh_store(tmp_path: Path, empty_store_template: Path) -> Path:
    """An empty, migrated mlflow.db at tmp_path/mlflow.db."""
    target = tmp_path / "mlflow.db"
    shutil.copy(empty_store_template, target)
    return target
