"""What a report is about: the runs, how they form table rows, and (for a sweep) its jobs."""

from __future__ import annotations

from dataclasses import dataclass

from binwrn.report.runs import RunResult

KINDS = ("table1", "table2", "ablation", "convergence", "generic", "sensitivity")


@dataclass(frozen=True)
class Job:
    """One entry of a sweep's jobs.json, as the sweep driver wrote it."""

    name: str
    labels: dict[str, object]
    status: str  # finished | skipped (an identical config had finished: run_id is that) | failed
    run_id: str | None
    reason: str | None


@dataclass(frozen=True)
class Selection:
    title: str  # the sweep's name, the experiment's, or "filtered runs"
    kind: str  # one of KINDS
    row_keys: tuple[str, ...]  # label keys that identify a table row (never the seed)
    runs: tuple[RunResult, ...]  # those with a result, in the order they should appear
    source: str  # where they come from, one line of Markdown
    jobs: tuple[Job, ...] = ()
    parent_run_id: str | None = None
    smoke: bool = False
    notes: tuple[str, ...] = ()
