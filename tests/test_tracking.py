"""The tracked run's life cycle against a real SQLite MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from binwrn.errors import ConfigError
from binwrn.tracking.run import FAILURE_TAG, TrackedRun, find_resumable_run
from binwrn.tracking.store import absolute_uri


@pytest.fixture(autouse=True)
def _store(fresh_store: Path) -> Path:
    return fresh_store


def _run(tmp_path: Path, **kwargs) -> TrackedRun:
    return TrackedRun(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp", str(tmp_path / "art"),
                      "name", {"t": "1"}, {"model.bits": 1}, **kwargs)


def _only_run(tmp_path: Path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    return client, run


def test_finished_run_keeps_params_tags_metrics_and_artifacts(tmp_path: Path) -> None:
    with _run(tmp_path) as run:
        run.log_metrics({"test/acc": 0.5}, step=1)
        run.log_metrics({"test/acc": 0.75}, step=2)
        run.log_json({"a": 1}, "summary.json")
    client, stored = _only_run(tmp_path)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"model.bits": "1"} and stored.data.tags["t"] == "1"
    history = client.get_metric_history(stored.info.run_id, "test/acc")
    assert [m.value for m in history] == [0.5, 0.75]
    assert (tmp_path / "art" / "exp").is_dir()  # artifacts beside the store, not in the cwd
    experiment = client.get_experiment_by_name("exp")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_crash_marks_the_run_failed_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), _run(tmp_path):
        raise RuntimeError("loss exploded")
    _, stored = _only_run(tmp_path)
    assert stored.info.status == "FAILED"
    assert stored.data.tags[FAILURE_TAG] == "RuntimeError: loss exploded"


def test_ctrl_c_marks_the_run_killed(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), _run(tmp_path):
        raise KeyboardInterrupt
    _, stored = _only_run(tmp_path)
    assert stored.info.status == "KILLED"


def test_system_metrics_are_sampled(tmp_path: Path) -> None:
    import time

    with _run(tmp_path, system_metrics_interval=0.5):
        time.sleep(2.5)
    _, stored = _only_run(tmp_path)
    assert any(k.startswith("system/cpu") for k in stored.data.metrics)


def test_relative_sqlite_uri_becomes_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    for bad in ("sqlite://", "ftp://x", "mlruns"):
        with pytest.raises(ConfigError, match="tracking.uri"):
            absolute_uri(bad)


def test_only_unfinished_runs_of_the_same_config_are_resumable(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tags = {"binwrn.config_hash": "abc", "binwrn.output_dir": "/somewhere"}
    with TrackedRun(uri, "exp", str(tmp_path / "art"), "done", tags, {}):
        pass
    assert find_resumable_run(MlflowClient(uri), "exp", "abc") is None  # FINISHED is never resumed
    with pytest.raises(RuntimeError), TrackedRun(uri, "exp", str(tmp_path), "x", tags, {}) as run:
        raise RuntimeError("crash")
    assert find_resumable_run(MlflowClient(uri), "exp", "abc") == (run.run_id, "/somewhere", set())
    assert find_resumable_run(MlflowClient(uri), "exp", "other-config") is None
    assert find_resumable_run(MlflowClient(uri), "no-such-experiment", "abc") is None
    with TrackedRun(uri, "exp", str(tmp_path), "x", tags, {}, resume_run_id=run.run_id) as again:
        assert again.resumed and again.run_id == run.run_id
    client = MlflowClient(uri)
    resumed = client.get_run(run.run_id)
    assert resumed.info.status == "FINISHED" and FAILURE_TAG not in resumed.data.tags
