"""Leave the process as soon as its work is recorded.

After a command's last line, CPython tears down every module it imported and collects their
objects. A `binwrn-run` has imported about 5,000 (torch, Lightning, MLflow with pandas,
sympy through torch._dynamo), and that teardown kept the process alive for seconds after the
run's end was recorded (docs/benchmarks.md), while the user's shell, a sweep driver or a
scheduler waited. Nothing binwrn needs happens in it: here the work that must happen at exit
does (threading's exit callbacks run and threads that are not daemons are joined, atexit
handlers run: MLflow's, logging's, temporary folders'; the standard streams are flushed), then
the process ends with its status.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    """End the process with `status` after what exit must do, without the teardown."""
    # The interpreter's own order: threading's exit callbacks first (concurrent.futures and
    # joblib's loky executors shut their workers down there; joining their threads before
    # that waits forever), then the join of every thread that is not a daemon (both are
    # threading._shutdown), then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a pipe the reader left
            pass
    os._exit(status)


def _status(code: object) -> int:
    """SystemExit's code as an exit status, as the interpreter turns it into one."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def without_teardown(main: Callable[[], None]) -> Callable[[], NoReturn]:
    """`main` as a console script that exits without the interpreter's teardown. An
    exception other than SystemExit takes the usual way out, with its traceback."""
    def entry() -> NoReturn:
        try:
            main()
        except SystemExit as stop:
            exit_now(_status(stop.code))
        exit_now(0)

    entry.__doc__ = main.__doc__
    return entry
