"""The table set beside paper 1 Table 2 (spec 1.6): SVHN, ImageNet32 (top-1 and top-5),
ImageNet and the MNIST paragraph of section 4, our error beside the paper's.

As for Table 1, a run is matched to a row by bits, depth-width and data set whatever its
epoch budget, and the budget is shown beside the paper's.
"""

from __future__ import annotations

from binwrn.report.paper import TABLE2
from binwrn.report.rows import Row
from binwrn.report.table import RESULT_COLUMNS, Column, Table
from binwrn.report.table1 import (
    PAPER_COLUMNS,
    TOP5_COLUMNS,
    ambiguous_keys,
    has_top5,
    paper_order,
    paper_row_cells,
    paper_top5,
    table2_cell,
    top5_cells,
)


def _note(row: Row) -> str:
    cell = table2_cell(row.sample)
    return cell.note if cell else ""


def table2_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    extra = ambiguous_keys(rows, row_keys)
    top5 = has_top5(rows) or any(paper_top5(row.sample) is not None for row in rows)
    columns = (Column("weights"), Column("net"), Column("data"), *(Column(k) for k in extra),
               Column("epochs"), Column("paper ep."), *RESULT_COLUMNS, *PAPER_COLUMNS,
               *(TOP5_COLUMNS if top5 else ()), Column("paper's note"))
    table_rows = [(*paper_row_cells(row, table2_cell(row.sample), extra, aug=False),
                   *(top5_cells(row) if top5 else ()), _note(row))
                  for row in sorted(rows, key=paper_order(TABLE2, table2_cell))]
    return Table("report", "Paper 1 Table 2: SVHN, ImageNet32, ImageNet and MNIST test error (%)",
                 columns, tuple(table_rows),
                 note="Top-1 error, and top-5 where the data set has more than 5 classes; "
                      "ImageNet32's is on its validation set, ImageNet's paper values are "
                      "single-crop. Paper values from spec 1.6; diff = ours - paper; std over "
                      "seeds (sample standard deviation).")
