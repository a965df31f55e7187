"""One MLflow run per training job, owned here from creation to its final status.

The run is created with the MLflow client (not Lightning's logger), so this module decides
its status: FINISHED on success, FAILED with the reason on an error, KILLED on Ctrl-C.
A SIGKILL leaves it RUNNING: the run records the pid and host of the process that holds it
(`binwrn.pid`, `binwrn.host`), and the next start of the same config on that host marks it
KILLED once that process is gone (`mark_dead_runs_killed`), unless it resumes it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from binwrn.errors import BinwrnError, ConfigError, Interrupted
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.store import (
    artifact_location,
    ensure_experiment,
    open_client,
)

FAILURE_TAG = "binwrn.failure_reason"
PID_TAG, HOST_TAG = "binwrn.pid", "binwrn.host"
# SHA-256 of the run's last.ckpt, and of the one it replaced (train/checkpoints.py).
DIGEST_TAG, PREVIOUS_DIGEST_TAG = "binwrn.checkpoint_sha256", "binwrn.checkpoint_sha256_previous"
UNRESUMABLE_TAG = "binwrn.unresumable"  # "true": its checkpoint failed verification


def process_tags() -> dict[str, str]:
    """The process that holds a run, so that a later start can tell whether it is gone."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


class TrackedRun:
    """Context manager around one MLflow run: params and tags in, status out."""

    def __init__(
        self, uri: str, experiment: str, artifact_root: str, run_name: str,
        tags: dict[str, str], params: dict[str, object], system_metrics_interval: float = 0,
        resume_run_id: str | None = None, client=None,
    ) -> None:
        # Normalised and checked once, by the caller (prepare: store.store_uri, which refuses
        # a server that does not answer before anything asks it).
        self.uri = uri
        self.experiment, self.artifact_root = experiment, artifact_root
        self.run_name, self.tags, self.params = run_name, tags, params
        self.system_metrics_interval = system_metrics_interval
        self.client = client  # the process's one client (train/run.py); else opened in __enter__
        self.run_id, self.experiment_id = resume_run_id, None
        self._resumed = resume_run_id is not None
        self._monitor = None

    @property
    def resumed(self) -> bool:
        return self._resumed

    def __enter__(self) -> TrackedRun:
        try:
            self.client = self.client or open_client(self.uri)
            location = artifact_location(self.uri, self.artifact_root, self.experiment)
            self.experiment_id = ensure_experiment(self.client, self.experiment, location)
            if self._resumed:  # same config hash, so params are unchanged: log none again
                self.client.update_run(self.run_id, status="RUNNING")
                self.set_tags(process_tags())
                if FAILURE_TAG in self.client.get_run(self.run_id).data.tags:
                    self.client.delete_tag(self.run_id, FAILURE_TAG)
            else:
                self.run_id = self.client.create_run(
                    self.experiment_id, run_name=self.run_name,
                    tags={**self.tags, **process_tags()},
                ).info.run_id
                self.client.log_batch(
                    self.run_id, params=[Param(k, str(v)) for k, v in self.params.items()]
                )
        except MlflowException as err:
            raise ConfigError(redact_uri(
                f"The tracking store tracking.uri={self.uri} cannot be used "
                f"({str(err).splitlines()[0]}): fix the URI or start the server."
            )) from None
        self._start_system_metrics()
        return self

    def record_checkpoint_digests(self, written: str, replaced: str | None) -> None:
        """Before a new last.ckpt is renamed into place: its SHA-256, and the one of the file it
        replaces, so that a kill on either side of the rename leaves a resumable pair."""
        tags = {DIGEST_TAG: written}
        if replaced is not None:
            tags[PREVIOUS_DIGEST_TAG] = replaced
        self.set_tags(tags)

    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def _start_system_metrics(self) -> None:
        if self.system_metrics_interval <= 0:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            self.run_id, sampling_interval=self.system_metrics_interval, tracking_uri=self.uri,
            resume_logging=self._resumed,
        )
        self._monitor.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._monitor is not None:
            self._monitor.finish()
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit, Interrupted)):
            status = RunStatus.KILLED
            reason = str(exc) if isinstance(exc, Interrupted) else "interrupted by the user"
            self.client.set_tag(self.run_id, FAILURE_TAG, reason)
        else:
            status = RunStatus.FAILED
            reason = str(exc) if isinstance(exc, BinwrnError) else f"{exc_type.__name__}: {exc}"
            self.client.set_tag(self.run_id, FAILURE_TAG, redact_uri(reason)[:5000])
        self.client.set_terminated(self.run_id, RunStatus.to_string(status))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now_ms(), step) for k, v in metrics.items()],
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_json(self, data: dict, artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2), artifact_file)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        if folder.is_dir():
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)


def now_ms() -> int:
    return int(time.time() * 1000)


class Resumable(NamedTuple):
    run_id: str
    output_dir: str
    digests: set[str]  # the SHA-256s its last.ckpt may have (train/checkpoints.py)


def _unfinished_runs(client, experiment_id: str, config_hash: str, max_results: int = 50):
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`binwrn.config_hash` = '{config_hash}' and "
                      "attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=max_results,
    )


def find_resumable_run(client, experiment: str, config_hash: str) -> Resumable | None:
    """The newest unfinished run of this exact config, if any, with its output folder and
    the checkpoint digests it recorded.

    Unfinished = not FINISHED: RUNNING after a SIGKILL, KILLED after SIGTERM, FAILED after a
    crash. Runs whose checkpoint already failed verification are passed over. The caller
    decides whether the checkpoint can be resumed (train/resume.py).
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = [r for r in _unfinished_runs(client, found.experiment_id, config_hash)
            if r.data.tags.get(UNRESUMABLE_TAG) != "true"]
    if not runs or "binwrn.output_dir" not in runs[0].data.tags:
        return None
    tags = runs[0].data.tags
    digests = {tags[k] for k in (DIGEST_TAG, PREVIOUS_DIGEST_TAG) if k in tags}
    return Resumable(runs[0].info.run_id, tags["binwrn.output_dir"], digests)


def mark_unresumable(client, run_id: str, reason: str) -> None:
    """A run whose checkpoint cannot be resumed: FAILED with the reason, never picked again."""
    client.log_batch(run_id, tags=[RunTag(FAILURE_TAG, reason[:5000]),
                                   RunTag(UNRESUMABLE_TAG, "true")])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


def _process_gone(tags: dict[str, str], lock_held: Callable[[str], bool]) -> bool:
    """Whether the process that holds a run is known to be gone: it ran on this host and its
    pid no longer exists, or its output folder's lock is free (the pid may be reused)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False  # another machine (or an older binwrn): its own next start decides
    try:
        os.kill(int(tags[PID_TAG]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    folder = tags.get("binwrn.output_dir")
    return bool(folder) and Path(folder, ".binwrn.lock").is_file() and not lock_held(folder)


def mark_dead_runs_killed(client, experiment: str, config_hash: str,
                          lock_held: Callable[[str], bool], keep: str | None = None
                          ) -> list[str]:
    """Mark RUNNING runs of this config whose process is gone (SIGKILL, OOM killer, power
    loss) KILLED with the reason, except `keep` (the run being resumed); their ids.
    `lock_held(output_dir)` says whether a live process holds that folder's lock."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    marked = []
    for run in _unfinished_runs(client, found.experiment_id, config_hash):
        tags = run.data.tags
        if run.info.status != "RUNNING" or run.info.run_id == keep or \
                not _process_gone(tags, lock_held):
            continue
        reason = (f"its process (pid {tags[PID_TAG]} on {tags[HOST_TAG]}) ended without "
                  "recording an end (SIGKILL, out of memory, power loss); found by a later "
                  "start of the same config")
        client.set_tag(run.info.run_id, FAILURE_TAG, reason)
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        marked.append(run.info.run_id)
    return marked
