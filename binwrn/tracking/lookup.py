"""Finding a finished run again: by id, in the default store or a named one; adding to it.

Used by binwrn-export: the run's config and checkpoint are fetched from its artifacts, and
the export's size report and files are logged back on the same (FINISHED) run.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.entities import Run, RunTag
from mlflow.exceptions import MlflowException

from binwrn.errors import ConfigError
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.store import open_client, store_uri

DEFAULT_URI = "sqlite:///mlflow.db"


def resolve_uri(given: str | None, must_exist: bool = True) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory."""
    uri = store_uri(given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI)
    if must_exist and uri.startswith("sqlite:///") and \
            not Path(uri[len("sqlite:///"):]).is_file():
        raise ConfigError(f"No tracking store at {uri[len('sqlite:///'):]}: run from the folder "
                          "holding mlflow.db, or pass --tracking-uri (or set "
                          "MLFLOW_TRACKING_URI) to the store the run is in.")
    return uri


def find_run(uri: str, run_id: str) -> Run:
    try:
        return open_client(uri).get_run(run_id)
    except MlflowException:
        raise ConfigError(f"No run {run_id} in the tracking store {redact_uri(uri)}: check the "
                          "id (binwrn-run prints it) or pass --tracking-uri.") from None


def fetch_artifact(uri: str, run_id: str, artifact: str, folder: Path) -> Path | None:
    """Download one artifact into `folder`; None where the run does not have it."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file
    try:
        return Path(open_client(uri).download_artifacts(run_id, artifact, str(folder)))
    except (MlflowException, OSError):
        return None


def log_on_run(uri: str, run_id: str, tags: dict[str, str], texts: dict[str, str],
               files: list[tuple[Path, str]]) -> None:
    """Tags, text artifacts by artifact path, and files into artifact folders."""
    client = open_client(uri)
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    for artifact_file, text in texts.items():
        client.log_text(run_id, text, artifact_file)
    for path, folder in files:
        client.log_artifact(run_id, str(path), folder)
