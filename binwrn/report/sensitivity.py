"""Paper 3's sensitivity pre-training (spec 3.6) as tables: each layer's validation error
when it alone is binary, our guided rank of it, and the official code's.

A row is one single-layer run setting (`iterative.order=single`); its network comes from the
run's `binwrn.net` tag and its layer number (1..L in forward order, paper 3's numbering) from
`binwrn.layer_number`. "ascend" ranks the least sensitive layer (lowest validation error)
first, as `iterative.ranking` does (binwrn.models.layer_order says why); paper 3's shipped
ascend lists (binwrn.report.paper.PAPER3_ASCEND) give the official rank where one exists.
"""

from __future__ import annotations

import statistics

from binwrn.report.paper import PAPER3_ASCEND
from binwrn.report.rows import Row
from binwrn.report.table_format import Column, Table
from binwrn.tracking.sensitivity_runs import LAYER_NUMBER_TAG, NET_TAG

VAL_ERROR = "val/error_pct"


def _layer(row: Row) -> tuple[str, str, int]:
    """(net, layer name, layer number) of a row's runs."""
    run = row.sample
    number = run.tags.get(LAYER_NUMBER_TAG, "0")
    return (run.tags.get(NET_TAG, "?"), str(run.params.get("iterative.layer", "?")),
            int(number) if number.isdigit() else 0)


def _mean(row: Row, metric: str) -> float | None:
    values = [r.metrics[metric] for r in row.runs if metric in r.metrics]
    return statistics.fmean(values) if values else None


def _by_net(rows: list[Row]) -> dict[str, list[Row]]:
    nets: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: (_layer(r)[0], _layer(r)[2])):
        nets.setdefault(_layer(row)[0], []).append(row)
    return nets


def ascend_numbers(rows: list[Row]) -> list[int]:
    """One net's layer numbers, least sensitive (lowest validation error) first; ties keep
    forward order, as binwrn.models.layer_order.guided_orders does."""
    scored = [(_mean(r, VAL_ERROR), _layer(r)[2]) for r in rows]
    return [number for error, number in sorted(scored, key=lambda s: (
        float("inf") if s[0] is None else s[0], s[1]))]


def _spearman(ours: list[int], paper: tuple[int, ...]) -> float | None:
    """Rank correlation of two orders of the same layers (1: identical, -1: reversed)."""
    if sorted(ours) != sorted(paper) or len(ours) < 2:
        return None
    n = len(ours)
    d2 = sum((ours.index(x) - paper.index(x)) ** 2 for x in ours)
    return 1.0 - 6.0 * d2 / (n * (n * n - 1))


def sensitivity_table(rows: list[Row]) -> Table:
    columns = (Column("net"), Column("layer"), Column("no."), Column("val error (%)", "error"),
               Column("test error (%)", "error"), Column("n", "count"), Column("our rank"),
               Column("paper rank"))
    table_rows = []
    for net, members in _by_net(rows).items():
        ascend, paper = ascend_numbers(members), PAPER3_ASCEND.get(net)
        for row in members:
            _, name, number = _layer(row)
            paper_rank = paper.index(number) + 1 if paper and number in paper else None
            table_rows.append((net, name, number, _mean(row, VAL_ERROR), row.stats[0],
                               row.stats[2], ascend.index(number) + 1, paper_rank))
    return Table("report", "Sensitivity: validation error with one layer binary", columns,
                 tuple(table_rows),
                 note="A row trains with that layer alone binary, every other layer fp32, and "
                      "measures the error on the validation images held out of training "
                      "(data.val_size). Rank 1 is the least sensitive layer, the first of "
                      "\"ascend\"; paper rank: its place in the official code's ascend list "
                      "(spec 3.6), none for the MLPs.")


def orders_table(rows: list[Row]) -> Table:
    columns = (Column("net"), Column("our ascend"), Column("paper ascend"),
               Column("rank correlation", "delta"))
    table_rows = []
    for net, members in _by_net(rows).items():
        ours, paper = ascend_numbers(members), PAPER3_ASCEND.get(net)
        table_rows.append((net, " ".join(map(str, ours)),
                           " ".join(map(str, paper)) if paper else None,
                           _spearman(ours, paper) if paper else None))
    return Table("orders", "Guided orders: ours beside the official ones", columns,
                 tuple(table_rows),
                 note="Layer numbers 1..L in forward order, least sensitive first (\"ascend\"; "
                      "\"descend\" is the reverse). Rank correlation: Spearman's, 1 when both "
                      "orders agree, -1 when one reverses the other.")
