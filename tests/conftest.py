"""Shared fixtures. Creating an MLflow SQLite store runs its schema migrations (seconds),
so one empty store is made per session and copied wherever a test needs a fresh one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


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
