"""A test hook, not a feature: `BINWRN_TEST_KILL_AT=<moment>[:<n>[:TERM]]` makes the process
SIGKILL itself (SIGTERM with `:TERM`, the signal a scheduler sends) the n-th time (default:
the first) it reaches that moment, so tests can stop a run at a named point instead of
guessing with timers (tests/test_resume.py, docs/reliability.md
"Crash semantics"). Unset, each point costs one dictionary look-up.

Moments: `store` (a new SQLite store, migrated under a temporary name, before it is renamed
into place), `mid_epoch` (halfway through a training epoch), `checkpoint_write` (the new
`last.ckpt` written and its digest recorded on the run, before it replaces the old one),
`bn_recompute` (after the first batch of the final BN-statistics recompute), `final_test`
(after the first batch of a `trainer.test`).
"""

from __future__ import annotations

import os
import signal

VARIABLE = "BINWRN_TEST_KILL_AT"
MOMENTS = ("store", "mid_epoch", "checkpoint_write", "bn_recompute", "final_test")
_reached: dict[str, int] = {}


def kill_point(moment: str) -> None:
    """SIGKILL this process here if BINWRN_TEST_KILL_AT names this moment (and count)."""
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    if name != moment:
        return
    count, _, how = rest.partition(":")
    _reached[moment] = _reached.get(moment, 0) + 1
    if _reached[moment] == int(count or 1):
        os.kill(os.getpid(), signal.SIGTERM if how == "TERM" else signal.SIGKILL)
