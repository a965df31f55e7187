"""Where runs are stored: an MLflow tracking URI, checked before any run starts.

Default: `sqlite:///mlflow.db` in the working directory, with artifacts in `mlartifacts/`
beside it, the same pair `make ui` serves (MLflow >= 3.13 refuses plain directories,
ecosystem-notes 2.5). Relative SQLite paths are made absolute so runs started from any
Hydra output directory land in the same file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from urllib.parse import urlparse

from binwrn.errors import ConfigError
from binwrn.kill_points import kill_point

EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def absolute_uri(uri: str) -> str:
    """Make a relative `sqlite:///x.db` absolute; refuse schemes MLflow cannot track to."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        if not uri.startswith("sqlite:///") or not path:
            raise ConfigError(
                f"tracking.uri={uri} is malformed: write sqlite:///relative.db or "
                "sqlite:////absolute/path.db."
            )
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    if parsed.scheme in ("http", "https", "databricks", "postgresql", "mysql"):
        return uri
    raise ConfigError(
        f"tracking.uri={uri} is not supported: use sqlite:///<file>.db or http://<host>:<port>."
    )


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a server that does not answer (MLflow's own client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException:
        raise ConfigError(
            f"The tracking server tracking.uri={uri} cannot be reached: start it "
            "(make ui) or point tracking.uri at a running server or a sqlite:/// file."
        ) from None


def artifact_location(uri: str, artifact_root: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store go to a folder beside it; a server chooses its own."""
    if not uri.startswith("sqlite:"):
        return None
    return (Path(artifact_root).expanduser().resolve() / experiment).as_uri()


def ui_link(port: int = 5000, experiment_id: str | None = None) -> str:
    """The MLflow 3 'Model training' view (its default GenAI view shows no metrics)."""
    base = f"http://127.0.0.1:{port}/"
    if experiment_id is None:
        return base
    return f"{base}#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _create_sqlite_store(database: Path) -> None:
    """Create and migrate a new SQLite store under a temporary name, then rename it into
    place. MLflow's migrations take seconds and commit step by step: a process killed among
    them left a store that no later process could open ("duplicate column name: step").
    Called under the init lock, so a leftover temporary file is a dead process's."""
    import sqlalchemy

    try:
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:  # a later MLflow without it: it creates the store in place
        return
    for stale in database.parent.glob(f".{database.name}.*.creating"):
        stale.unlink(missing_ok=True)
    temporary = database.with_name(f".{database.name}.{os.getpid()}.creating")
    engine = sqlalchemy.create_engine(f"sqlite:///{temporary}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    kill_point("store")  # a test hook (binwrn/kill_points.py)
    os.replace(temporary, database)


def open_client(uri: str):
    """An MlflowClient on `uri` whose store exists and is migrated.

    MLflow creates and migrates a SQLite store on first use; several processes doing that at
    once collide ("table ... already exists", alembic version mismatch). The first use is
    therefore serialised with a lock file beside the database; later writes need no lock.
    A new store appears whole or not at all (`_create_sqlite_store`).
    """
    from mlflow import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(uri)
    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.init-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            _create_sqlite_store(database)
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # creates and migrates the schema if needed
    return client


def ensure_experiment(client, name: str, location: str | None) -> str:
    """The id of experiment `name`, created (with the UI's training view) if missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException:  # another process created it first
        return client.get_experiment_by_name(name).experiment_id
