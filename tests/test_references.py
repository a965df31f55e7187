"""The papers' numbers as reference runs (issue 29), end to end against a real SQLite MLflow
store: `binwrn-report --references` logs them once under the runs' metric keys, a second call
adds nothing, a corrected number replaces its run, and no reader takes one for a user's run
(reports, sweep skipping, binwrn-export)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from helpers_cli import call_entry
from helpers_report import log_child, new_experiment, paper_params
from mlflow import MlflowClient

from binwrn import cli as binwrn_cli
from binwrn.errors import ConfigError
from binwrn.report import cli as report_cli
from binwrn.report import paper
from binwrn.report.references import log_paper_references, paper_references
from binwrn.report.search import runs_selection
from binwrn.tracking.references import (
    REFERENCE_EXPERIMENT,
    REFERENCE_TAG,
    SOURCE_TAG,
    log_references,
)

# 26 Table 1 cells, 13 Table 2 rows (MNIST's two included), 4 Keras and 2 MATLAB curves, and
# paper 2's 8 cells.
EXPECTED_RUNS = 26 + 13 + 4 + 2 + 8


def _references(client: MlflowClient) -> dict[str, object]:
    experiment = client.get_experiment_by_name(REFERENCE_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {run.data.tags[REFERENCE_TAG]: run for run in runs}


def _history(client: MlflowClient, run, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


def test_references_are_logged_once_under_the_runs_metric_keys(fresh_store, monkeypatch,
                                                               capsys):
    uri = f"sqlite:///{fresh_store}"
    code, out, err = call_entry(report_cli.main, monkeypatch, capsys, "--references",
                                "--tracking-uri", uri)
    assert (code, err) == (0, "")
    assert f"{EXPECTED_RUNS} added" in out and "0 already there" in out
    client = MlflowClient(uri)
    runs = _references(client)
    assert len(runs) == EXPECTED_RUNS
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert all("binwrn.config_hash" not in run.data.tags for run in runs.values())

    # The Keras curve: test accuracy at the SGDR cycle ends, step = epoch, as runs log test/*.
    keras = runs["p1/curve/keras/1bit/20-10/cifar10++"]
    assert _history(client, keras, "test/acc") == pytest.approx(
        {end: acc / 100 for end, acc in zip(paper.CYCLE_ENDS, paper.KERAS_CURVES[
            ("cifar10", 1)], strict=True)})
    assert _history(client, keras, "test_final/error_pct") == pytest.approx({254: 3.75})
    assert keras.data.params["model.bits"] == "1" and keras.data.params["data.cutout"] == "18"
    assert "Keras" in keras.data.tags[SOURCE_TAG] and "1.6" in keras.data.tags[SOURCE_TAG]
    matlab = runs["p1/curve/matlab/1bit/20-10/cifar10++"]
    assert _history(client, matlab, "test_recomputed/error_pct")[254] == pytest.approx(3.82)

    # A Table 1 cell and a Table 2 row, with the paper's settings as params.
    cell = runs["p1/table1/1bit/20-10/cifar10++"]
    assert _history(client, cell, "test_final/error_pct") == {254: 3.92}
    assert cell.data.params["trainer.max_epochs"] == "254"
    imagenet = runs["p1/table2/1bit/18-2.5/imagenet"]
    assert _history(client, imagenet, "test_final/top5_error_pct") == {62: 11.51}
    assert _history(client, imagenet, "test_25crop/top1_error_pct") == {62: 26.04}
    assert imagenet.data.params["bn.learn_affine"] == "True"
    mnist = runs["p1/table2/1bit/20-4/mnist"]
    assert _history(client, mnist, "test_recomputed/error_pct") == paper.MNIST_CURVES[1]
    srelu = runs["p2/1bit/20-10/cifar100++/shifted_relu"]
    assert _history(client, srelu, "test/acc")[254] == pytest.approx(0.7598)
    assert srelu.data.params["model.temperature"] == "25.0"

    # A second call adds nothing.
    code, out, _ = call_entry(report_cli.main, monkeypatch, capsys, "--references",
                              "--tracking-uri", uri)
    assert code == 0 and "0 added" in out and f"{EXPECTED_RUNS} already there" in out
    assert len(_references(client)) == EXPECTED_RUNS


def test_a_corrected_number_replaces_its_run_and_a_dropped_one_goes(fresh_store):
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    references = paper_references()
    log_references(client, uri, str(fresh_store.parent / "art"), references)
    corrected = replace(references[0], history={"test_final/error_pct": {126: 5.0}})
    logged = log_references(client, uri, str(fresh_store.parent / "art"),
                            [corrected, *references[1:-1]])
    assert (logged.added, logged.replaced, logged.kept) == (0, 1, len(references) - 2)
    runs = _references(client)
    assert len(runs) == len(references) - 1 and references[-1].key not in runs
    assert _history(client, runs[corrected.key], "test_final/error_pct") == {126: 5.0}


def test_reports_and_export_leave_references_out(fresh_store, tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    experiment = new_experiment(client, "binwrn", tmp_path / "art")
    mine = log_child(client, experiment, paper_params(), 20.0)
    log_paper_references(client, uri)

    # Across all experiments, the report holds the user's run alone.
    selection = runs_selection(client, uri, None, None)
    assert [run.run_id for run in selection.runs] == [mine]

    with pytest.raises(ConfigError, match="holds the papers' published numbers"):
        runs_selection(client, uri, REFERENCE_EXPERIMENT, None)

    # binwrn-export refuses a reference run in one sentence.
    reference = next(iter(_references(client).values()))
    code, out, err = call_entry(binwrn_cli.export, monkeypatch, capsys,
                                reference.info.run_id, "--tracking-uri", uri,
                                "--out", tmp_path / "x.bwn")
    assert code == 2 and "is a paper reference" in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.bwn").exists()


def test_a_sweep_logs_references_on_a_stores_first_use_only(fresh_store, tmp_path):
    from binwrn.sweeps.driver import _first_use_references

    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    _first_use_references(client, uri, str(tmp_path / "art"))
    assert len(_references(client)) == EXPECTED_RUNS
    # A user who deleted the experiment does not get it back from the next sweep.
    client.delete_experiment(client.get_experiment_by_name(REFERENCE_EXPERIMENT).experiment_id)
    _first_use_references(client, uri, str(tmp_path / "art"))
    assert client.get_experiment_by_name(REFERENCE_EXPERIMENT).lifecycle_stage == "deleted"


def test_the_references_quote_report_paper_and_nothing_else():
    """Each reference's final number is one report/paper.py holds (no second copy)."""
    published = ({c.error for c in paper.TABLE1} | {c.error for c in paper.TABLE2}
                 | {round(100 - a, 2) for a in paper.PAPER2_ACCURACY.values()}
                 | {round(100 - c[-1], 2) for c in paper.KERAS_CURVES.values()}
                 | {round(100 - c[-1], 2) for c in paper.MATLAB_CURVES.values()})
    finals = {v for ref in paper_references()
              for v in ref.history["test_final/error_pct"].values()}
    assert finals == published


def test_the_reference_module_reads_no_number_of_its_own():
    source = Path(__file__).parents[1] / "binwrn" / "report" / "references.py"
    text = source.read_text()
    for number in ("96.", "3.92", "81.83", "0.71"):
        assert number not in text
