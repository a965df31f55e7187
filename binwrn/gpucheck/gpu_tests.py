"""Section `gpu_tests`: tests/test_gpu_path.py (pytest marker `gpu`) on the check's device,
one row per test from pytest's JUnit XML."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from binwrn.gpucheck.process import run_limited
from binwrn.gpucheck.rows import Row

TEST_FILE = "tests/test_gpu_path.py"


def rows(device: str, out: Path, repo: Path, limit_s: float, log) -> list[Row]:
    report = out / "gpu-tests.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
               f"--junitxml={report}", TEST_FILE]
    env = {**os.environ, "BINWRN_CHECK_DEVICE": device}
    if run_limited(command, limit_s, log, env, repo) is None:
        return [*_read(report), Row("gpu_tests", "pytest -m gpu", f"over {limit_s:.0f} s",
                                    verdict="timeout")]
    found = _read(report)
    return found or [Row("gpu_tests", "pytest -m gpu", "no results (see the log)",
                         verdict="error")]


def _read(report: Path) -> list[Row]:
    if not report.is_file():
        return []
    rows = []
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome, verdict = "passed", "pass"
        for child, word in (("failure", "fail"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(child)
            if found is not None:
                message = (found.get("message") or "").splitlines()[:1]
                outcome, verdict = f"{word}: {' '.join(message)[:200]}", word
                break
        verdict = "fail" if verdict == "skipped" else verdict  # the check needs every test
        rows.append(Row("gpu_tests", case.get("name", "?"),
                        f"{outcome} in {float(case.get('time', 0)):.1f} s", "passes", verdict))
    return rows
