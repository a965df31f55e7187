"""One of each per `binwrn-run` (issue 28): one check of the config, one composition of it
and one MLflow client, handed to the resume lookup, the ghost marking and the tracked run.

Counted in a real run by tests/count_calls/sitecustomize.py, which wraps the calls without
changing what they do."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from e2e import binwrn_run

COUNTER = Path(__file__).resolve().parent / "count_calls"


def test_a_run_checks_composes_and_opens_the_store_once(tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    env = {"PYTHONPATH": os.pathsep.join([str(COUNTER), os.environ.get("PYTHONPATH", "")]),
           "BINWRN_COUNT_CALLS": str(counts)}
    out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [r.info.status for r in out.runs()] == ["FINISHED"]
    assert Counter(counts.read_text().split()) == {"check": 1, "composition": 1, "client": 1}
