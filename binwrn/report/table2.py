"""The table set beside paper 1 Table 2 (spec 1.6): SVHN, ImageNet32 (top-1 and top-5),
ImageNet and the MNIST paragraph of section 4, our error beside the paper's.

As for Table 1, a run is matched to a row by bits, depth-width and data set whatever its
epoch budget, and the budget is shown beside the paper's.
"""

from __future__ import annotations

from binwrn.report.paper import TABLE2
from binwrn.report.rows import Row
from binwrn.report.table import RESULT_COLUMNS, Column, Table, difference
from binwrn.report.table1 import (
    DATASETS,
    PAPER_COLUMNS,
    TOP5_COLUMNS,
    ambiguous_keys,
    has_top5,
    net_label,
    paper_top5,
    table2_cell,
    top5_cells,
)


def _paper_order(row: Row) -> tuple:
    cell = table2_cell(row.sample)
    return (TABLE2.index(cell), "") if cell else (len(TABLE2), row.text)


def table2_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    extra = ambiguous_keys(rows, row_keys)
    top5 = has_top5(rows) or any(paper_top5(row.sample) is not None for row in rows)
    columns = (Column("weights"), Column("net"), Column("data"), *(Column(k) for k in extra),
               Column("epochs"), Column("paper ep."), *RESULT_COLUMNS, *PAPER_COLUMNS,
               *(TOP5_COLUMNS if top5 else ()), Column("paper's note"))
    table_rows = []
    for row in sorted(rows, key=_paper_order):
        run, cell = row.sample, table2_cell(row.sample)
        mean, std, n = row.stats
        paper = cell.error if cell else None
        dataset = run.params.get("dataset.name", "?")
        table_rows.append((
            f"{run.bits}-bit", net_label(run), DATASETS.get(dataset, dataset),
            *(str(run.value(k)) for k in extra),
            run.params.get("trainer.max_epochs", str(run.last_epoch)),
            cell.epochs if cell else None, mean, std, n, paper, difference(mean, paper),
            *(top5_cells(row) if top5 else ()), cell.note if cell else ""))
    return Table("report", "Paper 1 Table 2: SVHN, ImageNet32, ImageNet and MNIST test error (%)",
                 columns, tuple(table_rows),
                 note="Top-1 error, and top-5 where the data set has more than 5 classes; "
                      "ImageNet32's is on its validation set, ImageNet's paper values are "
                      "single-crop. Paper values from spec 1.6; diff = ours - paper; std over "
                      "seeds (sample standard deviation).")
