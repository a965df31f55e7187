"""One MLflow run per training job, owned here from creation to its final status.

The run is created with the MLflow client (not Lightning's logger), so this module decides
its status: FINISHED on success, FAILED with the reason on an error, KILLED on Ctrl-C
(a SIGKILL leaves it RUNNING; resuming is the reliability issue's work).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from binwrn.errors import BinwrnError, ConfigError, Interrupted
from binwrn.tracking.store import (
    absolute_uri,
    artifact_location,
    check_reachable,
    ensure_experiment,
    open_client,
)

FAILURE_TAG = "binwrn.failure_reason"


class TrackedRun:
    """Context manager around one MLflow run: params and tags in, status out."""

    def __init__(
        self, uri: str, experiment: str, artifact_root: str, run_name: str,
        tags: dict[str, str], params: dict[str, object], system_metrics_interval: float = 0,
        resume_run_id: str | None = None,
    ) -> None:
        self.uri = absolute_uri(uri)
        self.experiment, self.artifact_root = experiment, artifact_root
        self.run_name, self.tags, self.params = run_name, tags, params
        self.system_metrics_interval = system_metrics_interval
        self.client = None  # opened in __enter__, after the reachability check
        self.run_id, self.experiment_id = resume_run_id, None
        self._resumed = resume_run_id is not None
        self._monitor = None

    @property
    def resumed(self) -> bool:
        return self._resumed

    def __enter__(self) -> TrackedRun:
        check_reachable(self.uri)
        try:
            self.client = open_client(self.uri)
            location = artifact_location(self.uri, self.artifact_root, self.experiment)
            self.experiment_id = ensure_experiment(self.client, self.experiment, location)
            if self._resumed:  # same config hash, so params are unchanged: log none again
                self.client.update_run(self.run_id, status="RUNNING")
                if FAILURE_TAG in self.client.get_run(self.run_id).data.tags:
                    self.client.delete_tag(self.run_id, FAILURE_TAG)
            else:
                self.run_id = self.client.create_run(
                    self.experiment_id, run_name=self.run_name, tags=self.tags
                ).info.run_id
                self.client.log_batch(
                    self.run_id, params=[Param(k, str(v)) for k, v in self.params.items()]
                )
        except MlflowException as err:
            raise ConfigError(
                f"The tracking store tracking.uri={self.uri} cannot be used "
                f"({str(err).splitlines()[0]}): fix the URI or start the server."
            ) from None
        self._start_system_metrics()
        return self

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
            self.client.set_tag(self.run_id, FAILURE_TAG, reason[:5000])
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


def find_resumable_run(uri: str, experiment: str, config_hash: str) -> tuple[str, str] | None:
    """(run id, output dir) of the newest unfinished run of this exact config, if any.

    Unfinished = not FINISHED: RUNNING after a SIGKILL, KILLED after SIGTERM, FAILED after a
    crash. The caller decides whether its checkpoint can be resumed.
    """
    client = open_client(absolute_uri(uri))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`binwrn.config_hash` = '{config_hash}' and "
                      "attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs or "binwrn.output_dir" not in runs[0].data.tags:
        return None
    return runs[0].info.run_id, runs[0].data.tags["binwrn.output_dir"]
