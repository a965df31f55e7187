"""binwrn-migrate copies runs between stores whole: params, tags, metric histories, artifacts,
status, nesting; a second pass copies nothing twice."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from binwrn.tracking.migrate import ORIGIN_TAG, migrate


def _source(path: Path, template: Path, tmp: Path) -> dict[str, str]:
    shutil.copy(template, path)
    client = MlflowClient(f"sqlite:///{path}")
    experiment = client.create_experiment("binwrn", artifact_location=str(tmp / "src-artifacts"))
    parent = client.create_run(experiment, run_name="sweep:x",
                               tags={"binwrn.sweep_role": "parent"}).info.run_id
    child = client.create_run(experiment, run_name="job",
                              tags={"mlflow.parentRunId": parent,
                                    "binwrn.config_hash": "abc123"}).info.run_id
    client.log_param(child, "model.bits", "1")
    for step, value in ((1, 0.5), (2, 0.25), (2, 0.2)):  # a step logged twice, as binwrn does
        client.log_metric(child, "test/error_pct", value, step=step, timestamp=1000 + step * 10
                          + int(value * 100))
    client.log_text(child, "depth: 8\n", "config/resolved.yaml")
    client.set_terminated(child, "FINISHED")
    client.set_terminated(parent, "FAILED")
    return {"parent": parent, "child": child}


def test_runs_arrive_whole_and_nested_and_only_once(tmp_path, empty_store_template):
    ids = _source(tmp_path / "src.db", empty_store_template, tmp_path)
    shutil.copy(empty_store_template, tmp_path / "dst.db")
    assert migrate(f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}",
                   log=lambda *_: None) == 2
    dst = MlflowClient(f"sqlite:///{tmp_path / 'dst.db'}")
    runs = {r.data.tags[ORIGIN_TAG]: r for r in
            dst.search_runs([dst.get_experiment_by_name("binwrn").experiment_id])}
    child, parent = runs[ids["child"]], runs[ids["parent"]]
    assert (child.info.status, parent.info.status) == ("FINISHED", "FAILED")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["binwrn.config_hash"] == "abc123"
    assert child.data.params == {"model.bits": "1"}
    history = sorted((m.step, m.value) for m in
                     dst.get_metric_history(child.info.run_id, "test/error_pct"))
    assert history == [(1, 0.5), (2, 0.2), (2, 0.25)]
    local = Path(dst.download_artifacts(child.info.run_id, "config/resolved.yaml", str(tmp_path)))
    assert local.read_text() == "depth: 8\n"
    assert migrate(f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}",
                   log=lambda *_: None) == 0


def test_a_mistyped_source_is_one_sentence_and_creates_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("binwrn-migrate")), "--from",
         f"sqlite:///{tmp_path / 'mlfow.db'}", "--to", f"sqlite:///{tmp_path / 'new.db'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    assert "No tracking store at" in done.stdout + done.stderr
    assert "copied" not in done.stdout and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither store, nor a lock file
