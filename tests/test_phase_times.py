"""Every run records where its wall time went (issue 30): the time/* phases of
train/phase_clock.py in the store and the closing table, and a process that exits soon after
the run's recorded end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import binwrn_run

PHASES = ("to_first_step", "startup/data", "startup/imports", "startup/store", "loop",
          "epoch_tests", "recomputed_tests", "epoch_ends", "bn_recompute", "final_test",
          "artifacts")
# Between the run's recorded end and the process's exit: writing outcome.json, the table,
# the atexit handlers. The interpreter's teardown of its modules took 4-18 s on a loaded
# 2-core machine (binwrn/process_exit.py), 10.2 s in this test.
EXIT_BOUND_S = 3.0


@pytest.mark.slow
def test_a_run_logs_its_phases_and_exits_soon_after_its_end(tmp_path: Path) -> None:
    out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits",
                     "bn.recomputed_test_epochs=[1]", "tracking.system_metrics_interval=1")
    exited = time.time()
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = out.runs()
    metrics = run.data.metrics
    seconds = {phase: metrics[f"time/{phase}_s"] for phase in PHASES}
    assert all(s > 0 for s in seconds.values()), seconds
    startup = sum(seconds[f"startup/{p}"] for p in ("data", "imports", "store"))
    assert startup < seconds["to_first_step"]  # parts of it
    # The phases cover the process up to the moment they are logged, each counted once.
    covered = sum(s for p, s in seconds.items() if not p.startswith("startup/"))
    assert 0.9 * metrics["time/process_s"] < covered <= metrics["time/process_s"]
    assert "time by phase" in out.stdout and "loop" in out.stdout
    outcome = json.loads((tmp_path / "out" / "outcome.json").read_text())
    assert outcome["ended_at"] * 1000 >= run.info.end_time - 5  # recorded at the end
    assert 0 < exited - outcome["ended_at"] < EXIT_BOUND_S


EXITING = """
import atexit, sys
from binwrn.process_exit import without_teardown
atexit.register(lambda: open(sys.argv[1], "w").write("atexit ran"))
def main():
    print("printed before", end="")  # buffered: flushed on the way out
    raise SystemExit(int(sys.argv[2]) if sys.argv[2] != "none" else None)
without_teardown(main)()
"""


@pytest.mark.parametrize(("code", "status"), [("3", 3), ("none", 0)])
def test_the_quick_exit_keeps_the_status_the_atexit_work_and_the_output(
        tmp_path: Path, code: str, status: int) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", EXITING, str(marker), code],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert done.stdout == "printed before" and marker.read_text() == "atexit ran"


POOLED = """
import sys
from concurrent.futures import ThreadPoolExecutor
from binwrn.process_exit import without_teardown
POOL = ThreadPoolExecutor(2)  # alive to the end: its workers stop in threading's exit
def main():                   # callbacks, as joblib's loky executor's do
    print(POOL.submit(lambda: "pooled work done").result(), end="")
without_teardown(main)()
"""


def test_the_quick_exit_shuts_executors_down_in_the_interpreters_order() -> None:
    """A Hydra joblib sweep hung here: joining the executors' threads before threading's exit
    callbacks had told them to stop waited forever (the 2-job sweep test timed out)."""
    try:
        done = subprocess.run([sys.executable, "-c", POOLED], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: its executor's threads were joined first")
    assert done.returncode == 0 and done.stdout == "pooled work done", done.stderr
