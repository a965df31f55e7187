"""A child process held to a time limit together with everything it started (inductor's
compile workers, binwrn-run's own children): it runs in its own process group, and the
whole group is killed when the limit passes."""

from __future__ import annotations

import os
import signal
import subprocess


def run_limited(command: list[str], limit_s: float, log, env: dict | None = None,
                cwd=None) -> int | None:
    """The exit status, or None when the limit stopped it."""
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             start_new_session=True)
    try:
        return child.wait(timeout=max(limit_s, 1))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return None
