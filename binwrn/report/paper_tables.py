"""Our results beside the papers' numbers (spec 1.6): each run matched to its paper cell
(paper 1's Table 1 or Table 2, or paper 2's), and the tables built on that matching: Table 1,
the generic table and the Fig. 1 gap table (table2.py lays out Table 2 with the same cells).

A run is matched to a Table 1 cell by its params (bits, depth-width, data set, cutout on or
off), whatever its epoch budget, so the budget is shown beside the paper's: a short run is
not expected to reach the paper's number.
"""

from __future__ import annotations

from collections.abc import Callable

from binwrn.report.best_epoch import NOTE as BEST_NOTE
from binwrn.report.best_epoch import best_cells, best_columns
from binwrn.report.paper import (
    TABLE1,
    Table1Entry,
    Table2Entry,
    paper2_error,
    table1_entry,
    table2_entry,
)
from binwrn.report.rows import BitsPair, Row, settings_text, varying_settings
from binwrn.report.runs import RunResult
from binwrn.report.table_format import RESULT_COLUMNS, Column, Table, difference
from binwrn.tracking.sensitivity_runs import NET_TAG

DATASETS = {"cifar10": "C10", "cifar100": "C100", "svhn": "SVHN", "imagenet32": "I32",
            "imagenet": "ImageNet", "mnist": "MNIST"}
# The params the data, net and aug columns already show.
TABLE1_PARAMS = ("dataset.name", "model.depth", "model.width", "data.cutout")
PAPER_COLUMNS = (Column("paper (%)", "error"), Column("diff", "delta"))


def norm(run: RunResult) -> str:
    """The run's model.norm; runs from before paper 2 existed are paper 1's batchnorm net."""
    return run.params.get("model.norm", "batchnorm")


def paper_entry(run: RunResult, bits: int | None = None) -> Table1Entry | None:
    """The run's Table 1 cell, or that of the same net and data with other `bits`; none for
    a net without BN, which Table 1 does not have."""
    if norm(run) != "batchnorm":
        return None
    return table1_entry(bits or run.bits, run.int_param("model.depth"),
                        run.int_param("model.width"), run.params.get("dataset.name"), run.cutout)


def table2_cell(run: RunResult, bits: int | None = None) -> Table2Entry | None:
    """The run's Table 2 (or MNIST) result, or that of the same net and data with other
    `bits`; the paper used no cutout there, so a run with cutout has none."""
    if norm(run) != "batchnorm" or run.cutout:
        return None
    return table2_entry(bits or run.bits, net_label(run), run.params.get("dataset.name"))


def paper_top5(run: RunResult) -> float | None:
    cell = table2_cell(run)
    return cell.top5 if cell else None


def paper_error(run: RunResult, bits: int | None = None) -> float | None:
    """The paper's test error (%) for the run's setting: its Table 1 or Table 2 cell, or for
    a shifted-ReLU net paper 2's number (spec 2.4) at the notebooks' temperature."""
    entry = paper_entry(run, bits) or table2_cell(run, bits)
    if entry is not None or norm(run) != "shifted_relu":
        return entry.error if entry else None
    try:
        temperature = float(run.params.get("model.temperature", "nan"))
    except ValueError:
        return None
    return paper2_error(bits or run.bits, run.int_param("model.depth"),
                        run.int_param("model.width"), run.params.get("dataset.name"),
                        run.cutout, "shifted_relu", temperature)


def net_label(run: RunResult) -> str:
    """The net's name as the paper writes it: a WRN's <depth>-<width>; another net (paper
    3's) by its name, e.g. vgg5."""
    if "model.width" not in run.params and NET_TAG in run.tags:
        return run.tags[NET_TAG]
    return f"{run.params.get('model.depth', '?')}-{run.params.get('model.width', '?')}"


def _aug(run: RunResult) -> str:
    return "++" if run.cutout else "+"


def _identity(run: RunResult) -> tuple:
    return (run.bits, net_label(run), run.params.get("dataset.name"), run.cutout)


def ambiguous_keys(rows: list[Row], row_keys: tuple[str, ...]) -> list[str]:
    """Row keys that separate rows the paper's columns alone would show as one."""
    return [key for key in row_keys
            if any(len({r.sample.value(key) for r in rows
                        if _identity(r.sample) == _identity(row.sample)}) > 1 for row in rows)]


def paper_order(table: tuple, cell_of: Callable[[RunResult], object]) -> Callable[[Row], tuple]:
    """A sort key putting rows in the order of the paper's `table` (cells by `cell_of`),
    rows without a cell last, by their text."""
    def key(row: Row) -> tuple:
        cell = cell_of(row.sample)
        return (table.index(cell), "") if cell else (len(table), row.text)

    return key


def paper_row_cells(row: Row, cell: Table1Entry | Table2Entry | None, extra: list[str],
                    aug: bool) -> tuple:
    """weights, net, data set[, aug], the `extra` keys, our epochs and the paper's, our error
    (mean, std, n), the paper's and the difference: the cells tables 1 and 2 share."""
    run = row.sample
    mean, std, n = row.stats
    paper = cell.error if cell else None
    dataset = run.params.get("dataset.name", "?")
    return (f"{run.bits}-bit", net_label(run), DATASETS.get(dataset, dataset),
            *((_aug(run),) if aug else ()), *(str(run.value(k)) for k in extra),
            run.params.get("trainer.max_epochs", str(run.last_epoch)),
            cell.epochs if cell else None, mean, std, n, paper, difference(mean, paper))


def table1_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    extra = ambiguous_keys(rows, row_keys)
    columns = (Column("weights"), Column("net"), Column("data"), Column("aug"),
               *(Column(k) for k in extra), Column("epochs"), Column("paper ep."),
               *RESULT_COLUMNS, *PAPER_COLUMNS)
    table_rows = [paper_row_cells(row, paper_entry(row.sample), extra, aug=True)
                  for row in sorted(rows, key=paper_order(TABLE1, paper_entry))]
    return Table("report", "Paper 1 Table 1: CIFAR test error (%)", columns, tuple(table_rows),
                 note="\"+\": flip and pad/crop; \"++\": with 18x18 cutout. Paper values from "
                      "spec 1.6; diff = ours - paper; std over seeds (sample standard "
                      "deviation).")


TOP5_COLUMNS = (Column("ours top-5 (%)", "error"), Column("paper top-5", "error"),
                Column("diff top-5", "delta"))


def has_top5(rows: list[Row]) -> bool:
    """Whether any row's runs logged a top-5 error (data sets of more than 5 classes)."""
    return any(row.top5_stats[2] for row in rows)


def top5_cells(row: Row) -> tuple[float | None, float | None, float | None]:
    mean, paper = row.top5_stats[0], paper_top5(row.sample)
    return mean, paper, difference(mean, paper)


def generic_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    top5 = has_top5(rows)
    columns = (*(Column(k) for k in row_keys or ("runs",)), *RESULT_COLUMNS, *PAPER_COLUMNS,
               *(TOP5_COLUMNS if top5 else ()), *best_columns(rows))
    table_rows = []
    for row in rows:
        mean, std, n = row.stats
        paper = paper_error(row.sample)
        labels = [str(v) for _, v in row.label] or [row.text]
        table_rows.append((*labels, mean, std, n, paper, difference(mean, paper),
                           *(top5_cells(row) if top5 else ()), *best_cells(row, rows)))
    best = f" {BEST_NOTE}" if best_columns(rows) else ""
    return Table("report", "Final test error (%)", columns, tuple(table_rows),
                 note="Paper: the Table 1 or Table 2 cell (spec 1.6) with the same bits, "
                      "depth-width, data set and cutout, if there is one; for a shifted-ReLU net "
                      "(model.norm), paper 2's Keras re-run of 20-10 with cutout at the "
                      f"notebooks' T (spec 2.4); diff = ours - paper.{best}")


def _paper_gap(pair: BitsPair) -> float | None:
    """The paper's 1-bit minus fp32 error, where both come from one budget (MNIST's do not:
    fp32 after 6 epochs, 1-bit after 14)."""
    cells = (table2_cell(pair.sample, 1), table2_cell(pair.sample, 32))
    if all(cells) and cells[0].epochs != cells[1].epochs:
        return None
    one_bit, fp32 = paper_error(pair.sample, 1), paper_error(pair.sample, 32)
    return one_bit - fp32 if one_bit is not None and fp32 is not None else None


def gap_table(pairs: list[BitsPair]) -> Table:
    others = varying_settings(pairs, ignore=TABLE1_PARAMS)
    columns = (Column("data"), Column("net"), Column("aug"), Column("k"),
               *([Column("other settings")] if others else []), Column("fp32 (%)", "error"),
               Column("1-bit (%)", "error"), Column("gap (pp)", "delta"),
               Column("paper gap", "delta"), Column("diff", "delta"))
    table_rows = []
    for pair in pairs:
        run, paper = pair.sample, _paper_gap(pair)
        dataset = run.params.get("dataset.name", "?")
        table_rows.append((DATASETS.get(dataset, dataset), net_label(run), _aug(run),
                           run.params.get("model.width", "?"),
                           *([settings_text(pair, others)] if others else []), pair.fp32_error,
                           pair.one_bit_error, pair.gap, paper, difference(pair.gap, paper)))
    return Table("gap", "1-bit minus fp32 test error (percentage points)", columns,
                 tuple(table_rows),
                 note="Pairs of runs whose params differ only in model.bits (means over seeds); "
                      "k is the width. Paper gap: the difference of the two Table 1 or 2 cells "
                      "(spec 1.6, Fig. 1); diff = ours - paper.")
