"""Tables set beside paper 1 Table 1 (spec 1.6): our error, the paper's and the difference.

A run is matched to a Table 1 cell by its params (bits, depth-width, data set, cutout on or
off), whatever its epoch budget, so the budget is shown beside the paper's: a short run is
not expected to reach the paper's number.
"""

from __future__ import annotations

from binwrn.report.paper import TABLE1, Table1Entry, paper2_error, table1_entry
from binwrn.report.rows import BitsPair, Row, settings_text, varying_settings
from binwrn.report.runs import RunResult
from binwrn.report.table import RESULT_COLUMNS, Column, Table, difference
from binwrn.tracking.sensitivity_runs import NET_TAG

DATASETS = {"cifar10": "C10", "cifar100": "C100"}
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


def paper_error(run: RunResult, bits: int | None = None) -> float | None:
    """The paper's test error (%) for the run's setting: its Table 1 cell, or for a
    shifted-ReLU net paper 2's number (spec 2.4) at the notebooks' temperature."""
    entry = paper_entry(run, bits)
    if entry is not None or norm(run) != "shifted_relu":
        return entry.error if entry else None
    try:
        temperature = float(run.params.get("model.temperature", "nan"))
    except ValueError:
        return None
    return paper2_error(bits or run.bits, run.int_param("model.depth"),
                        run.int_param("model.width"), run.params.get("dataset.name"),
                        run.cutout, "shifted_relu", temperature)


def _net(run: RunResult) -> str:
    """A WRN's depth-width; another net (paper 3's) by its name, e.g. vgg5."""
    if "model.width" not in run.params and NET_TAG in run.tags:
        return run.tags[NET_TAG]
    return f"{run.params.get('model.depth', '?')}-{run.params.get('model.width', '?')}"


def _aug(run: RunResult) -> str:
    return "++" if run.cutout else "+"


def _identity(run: RunResult) -> tuple:
    return (run.bits, _net(run), run.params.get("dataset.name"), run.cutout)


def _ambiguous_keys(rows: list[Row], row_keys: tuple[str, ...]) -> list[str]:
    """Row keys that separate rows the paper's columns alone would show as one."""
    return [key for key in row_keys
            if any(len({r.sample.value(key) for r in rows
                        if _identity(r.sample) == _identity(row.sample)}) > 1 for row in rows)]


def _paper_order(row: Row) -> tuple:
    entry = paper_entry(row.sample)
    return (TABLE1.index(entry), "") if entry else (len(TABLE1), row.text)


def table1_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    extra = _ambiguous_keys(rows, row_keys)
    columns = (Column("weights"), Column("net"), Column("data"), Column("aug"),
               *(Column(k) for k in extra), Column("epochs"), Column("paper ep."),
               *RESULT_COLUMNS, *PAPER_COLUMNS)
    table_rows = []
    for row in sorted(rows, key=_paper_order):
        run, entry = row.sample, paper_entry(row.sample)
        mean, std, n = row.stats
        paper = entry.error if entry else None
        dataset = run.params.get("dataset.name", "?")
        table_rows.append((
            f"{run.bits}-bit", _net(run),
            DATASETS.get(dataset, dataset), _aug(run), *(str(run.value(k)) for k in extra),
            run.params.get("trainer.max_epochs", str(run.last_epoch)),
            entry.epochs if entry else None, mean, std, n, paper, difference(mean, paper)))
    return Table("report", "Paper 1 Table 1: CIFAR test error (%)", columns, tuple(table_rows),
                 note="\"+\": flip and pad/crop; \"++\": with 18x18 cutout. Paper values from "
                      "spec 1.6; diff = ours - paper; std over seeds (sample standard "
                      "deviation).")


def generic_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    columns = (*(Column(k) for k in row_keys or ("runs",)), *RESULT_COLUMNS, *PAPER_COLUMNS)
    table_rows = []
    for row in rows:
        mean, std, n = row.stats
        paper = paper_error(row.sample)
        labels = [str(v) for _, v in row.label] or [row.text]
        table_rows.append((*labels, mean, std, n, paper, difference(mean, paper)))
    return Table("report", "Final test error (%)", columns, tuple(table_rows),
                 note="Paper: the Table 1 cell (spec 1.6) with the same bits, depth-width, data "
                      "set and cutout, if there is one; for a shifted-ReLU net (model.norm), "
                      "paper 2's Keras re-run of 20-10 with cutout at the notebooks' T (spec "
                      "2.4); diff = ours - paper.")


def _paper_gap(pair: BitsPair) -> float | None:
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
        table_rows.append((DATASETS.get(dataset, dataset), _net(run), _aug(run),
                           run.params.get("model.width", "?"),
                           *([settings_text(pair, others)] if others else []), pair.fp32_error,
                           pair.one_bit_error, pair.gap, paper, difference(pair.gap, paper)))
    return Table("gap", "1-bit minus fp32 test error (percentage points)", columns,
                 tuple(table_rows),
                 note="Pairs of runs whose params differ only in model.bits (means over seeds); "
                      "k is the width. Paper gap: the difference of the two Table 1 cells "
                      "(spec 1.6, Fig. 1); diff = ours - paper.")
