"""Paper 3 as its code measured it: the best test accuracy over the epochs and the epoch it
came at ([IT] logs these, spec 3.5), set beside the final test the other tables report.

Columns appear only where paper-3 runs logged `test_best/*` (tracking/metrics.py; paper 1's
and 2's runs log it too, and their reports leave it out): the best over
every epoch, as the code keeps it (a partly binary epoch counts), and in a paper-3 run the
best over the epochs with every layer binary (`test_best_binary/*`), the net the paper's
claims are about.
"""

from __future__ import annotations

from binwrn.report.rows import Row, spread
from binwrn.report.table_format import Column
from binwrn.tracking.metrics import BEST, BEST_BINARY
from binwrn.tracking.sensitivity_runs import NET_TAG

BEST_COLUMNS = (Column("best (%)", "error"), Column("best epoch"))
BINARY_COLUMNS = (Column("best binary (%)", "error"), Column("its epoch"))
NOTE = ("Paper 3's claims compare what its code logs: the best test accuracy over the epochs, "
        "and its epoch (spec 3.5; the paper does not say whether its tables give that or the "
        "last epoch's, so both are here). best = the lowest test error of any epoch, with BN's "
        "running averages, as the code tests; best binary = the same over the epochs in which "
        "every layer was binary (a partly binary epoch can be the best of a run).")


def is_paper3(run) -> bool:
    """Paper 3's nets (their labels are not paper 1's wrn/plain), or any net trained with
    paper 3's layer-by-layer schedule (iterative.order is a param only then)."""
    net = run.tags.get(NET_TAG, "wrn")
    return "iterative.order" in run.params or not net.startswith(("wrn", "plain"))


def _has(rows: list[Row], view: str) -> bool:
    """Whether a paper-3 run of the rows logged `view` (every run logs test_best/*, but only
    paper 3 reports it)."""
    return any(f"{view}/error_pct" in run.metrics and is_paper3(run)
               for row in rows for run in row.runs)


def best_columns(rows: list[Row]) -> tuple[Column, ...]:
    return (*(BEST_COLUMNS if _has(rows, BEST) else ()),
            *(BINARY_COLUMNS if _has(rows, BEST_BINARY) else ()))


def _cells(row: Row, view: str) -> tuple[float | None, str | None]:
    runs = [run for run in row.runs if f"{view}/error_pct" in run.metrics]
    if not runs:
        return None, None
    epochs = "/".join(str(int(run.metrics[f"{view}/epoch"])) for run in runs)
    return spread([run.metrics[f"{view}/error_pct"] for run in runs])[0], epochs


def best_cells(row: Row, rows: list[Row]) -> tuple:
    """The row's cells under `best_columns(rows)`: mean best error, the epoch of each seed."""
    cells: tuple = ()
    for view in (BEST, BEST_BINARY):
        if _has(rows, view):
            cells += _cells(row, view)
    return cells
