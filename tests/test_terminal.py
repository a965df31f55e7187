"""What every command prints around its work: warnings that name the command, help that a
pipe may cut short, and product text without figures that go stale."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from binwrn.cli import _report_on_parent
from binwrn.terminal import show_warning

BINWRN_RUN = Path(sys.executable).with_name("binwrn-run")
PACKAGE = Path(__file__).resolve().parent.parent / "binwrn"


def test_a_warning_names_the_command_that_prints_it(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/binwrn-sweep", "p1_table1"])
    show_warning("something to know")
    assert capsys.readouterr().err.startswith("binwrn-sweep: warning: something to know")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/binwrn-run"])
    show_warning("something to know")
    assert capsys.readouterr().err.startswith("binwrn-run: warning: ")


def test_binwrn_sweeps_report_warning_names_binwrn_sweep(monkeypatch, capsys, tmp_path):
    """The closing report of a sweep whose parent run is not in the store: binwrn-sweep's own
    warning, which said "binwrn-run: warning"."""
    monkeypatch.setattr(sys, "argv", ["/venv/bin/binwrn-sweep", "p1_table1"])
    _report_on_parent(f"sqlite:///{tmp_path}/mlflow.db", "0" * 32, tmp_path / "report")
    err = capsys.readouterr().err
    assert err.startswith("binwrn-sweep: warning: no report: "), err


def test_help_cut_short_by_a_pipe_ends_quietly(tmp_path):
    """`binwrn-run --help | head -1`: one line, exit 0, and no BrokenPipeError traceback."""
    done = subprocess.run(["bash", "-o", "pipefail", "-c", f"'{BINWRN_RUN}' --help | head -1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.startswith("usage: binwrn-run") and done.stdout.count("\n") == 1
    assert done.stderr == "" and done.returncode == 0, done.stderr


# "about 20 s on 2 cores", "3 min on an H100 (2026-11-02)": a measured figure belongs in
# docs/, dated, with the command that measured it; in a docstring it goes stale unseen.
TIMING = re.compile(r"\b\d+(\.\d+)? ?(s|ms|min|minutes|seconds)\b[^.\n]{0,20}\bon (\d+ cores|"
                    r"an? [A-Z]\w+|\d+ CPUs?)|\b20\d\d-\d\d-\d\d\b")


def test_product_code_carries_no_dated_timings():
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if TIMING.search(line)]
    assert found == []
