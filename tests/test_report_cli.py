"""binwrn-report as a user meets it: the table on stdout and exit 0, or one sentence on stderr
and exit 2 for a selection that cannot be reported, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_report import ablation_sweep, log_child, log_sweep, new_experiment, paper_params
from mlflow import MlflowClient

from binwrn.report import cli

BINWRN_REPORT = Path(sys.executable).with_name("binwrn-report")
PROG = "binwrn-report"


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template) -> dict[str, str]:
    """The ablation sweep, a sweep whose jobs all failed, and a run that is no parent."""
    root = tmp_path_factory.mktemp("report-cli")
    shutil.copy(empty_store_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = new_experiment(client, "binwrn", root / "art")
    parent = ablation_sweep(client, experiment)
    failed = [({"seed": s}, {}, None, f"out of memory in job {s}") for s in (0, 1)]
    log_sweep(client, experiment, "all_failed", "name: all_failed\n", failed)
    child = log_child(client, experiment, paper_params(), 20.0)
    return {"uri": uri, "root": str(root), "parent": parent, "child": child}


def _call(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", [PROG, *argv])
    try:
        cli.main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), err
    return lines[0]


def test_sweep_by_name_prints_the_tables_and_writes_the_report(store, tmp_path, monkeypatch,
                                                                capsys):
    client = MlflowClient(store["uri"])
    code, out, err = _call(monkeypatch, capsys, "--sweep", "p1_fig6_ablation", "--no-log",
                           "--tracking-uri", store["uri"], "--out", str(tmp_path))
    assert code == 0, err
    assert "Paper 1 Fig. 6 ablation: final test error (%)" in out
    assert "23.50" in out and "0.71" in out  # the two-seed 1-bit sgdr row
    assert "job_010 failed: Diverged" in out
    assert (tmp_path / "report.md").is_file() and (tmp_path / "ablation_bars.png").is_file()
    assert client.list_artifacts(store["parent"], "report") == []  # --no-log


@pytest.mark.parametrize("argv, says", [
    (["--sweep", "no_such_sweep"], "No sweep named no_such_sweep"),
    (["--sweep", "all_failed"], "all 2 of its jobs failed (first: job_000: out of memory"),
    (["--sweep", "{child}"], "is not a sweep's parent run"),
    (["--experiment", "nope"], "No experiment named nope"),
    (["--filter", "params.`model.bits` = '7'"], "No finished runs matching"),
    (["--filter", "params.model.bits === 1"], "is not one MLflow can use"),
])
def test_bad_selections_get_one_sentence_and_exit_2(store, monkeypatch, capsys, tmp_path,
                                                    argv, says):
    argv = [a.format(child=store["child"]) for a in argv]
    code, out, err = _call(monkeypatch, capsys, *argv, "--tracking-uri", store["uri"],
                           "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert says in _one_error_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("uri, says", [
    ("http://127.0.0.1:9", "cannot be reached"),
    ("sqlite:///{root}/missing.db", "No tracking store at"),
])
def test_an_unreachable_store_gets_one_sentence(store, monkeypatch, capsys, uri, says):
    code, _, err = _call(monkeypatch, capsys, "--sweep", "x", "--tracking-uri",
                         uri.format(root=store["root"]))
    assert code == 2 and says in _one_error_line(err)


@pytest.mark.slow
def test_the_console_entry_reports_a_sweep_and_logs_it_on_the_parent(store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"]}  # the store from the environment
    done = subprocess.run([str(BINWRN_REPORT), "--sweep", "p1_fig6_ablation"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Measured effects (ours) beside the paper's claims" in done.stdout
    assert "| 1 | sgdr | paper | fixed | 23.50 | 0.71 | 2 |" in (
        tmp_path / "reports" / "p1_fig6_ablation" / "report.md").read_text()
    assert f"logged on parent run {store['parent']} under report/" in done.stdout
    logged = MlflowClient(store["uri"]).list_artifacts(store["parent"], "report")
    assert "report.md" in {Path(a.path).name for a in logged}


@pytest.mark.slow
def test_the_console_entry_refuses_an_unknown_sweep_in_one_line(store, tmp_path):
    done = subprocess.run([str(BINWRN_REPORT), "--sweep", "nope", "--tracking-uri",
                           store["uri"]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "No sweep named nope" in _one_error_line(done.stderr)
