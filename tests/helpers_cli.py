"""Call a console entry point in-process, as its user would from a shell (fast)."""

from __future__ import annotations

import sys


def call_entry(entry, monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `entry()` with `argv` as its command line."""
    monkeypatch.setattr(sys, "argv", [entry.__name__, *map(str, argv)])
    try:
        entry()
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err
