"""The table set beside paper 1 Table 2 (spec 1.6): SVHN, ImageNet32 (top-1 and top-5),
ImageNet and the MNIST paragraph of section 4, our error beside the paper's.

As for Table 1, a run is matched to a row by bits, depth-width and data set whatever its
epoch budget, and the budget is shown beside the paper's.
"""

from __future__ import annotations

from binwrn.report.paper import TABLE2
from binwrn.report.paper_tables import (
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
from binwrn.report.rows import Row
from binwrn.report.table_format import RESULT_COLUMNS, Column, Table

# Paper 1's 25-crop ImageNet test (5 scales x 5 positions), as binwrn/train/multi_crop logs it.
MULTI_CROP_METRICS = ("test_25crop/top1_error_pct", "test_25crop/top5_error_pct")
MULTI_CROP_COLUMNS = (Column("ours 25-crop (%)", "error"), Column("paper 25-crop", "error"),
                      Column("ours 25-crop top-5", "error"), Column("paper 25-crop top-5",
                                                                    "error"))


def _note(row: Row) -> str:
    cell = table2_cell(row.sample)
    return cell.note if cell else ""


def _paper_multi_crop(row: Row) -> tuple[float, float] | None:
    cell = table2_cell(row.sample)
    return cell.multi_crop if cell else None


def _has_multi_crop(rows: list[Row]) -> bool:
    """Whether any row logged the 25-crop test or has the paper's 25-crop numbers."""
    return any(_paper_multi_crop(row) or row.metric_mean(MULTI_CROP_METRICS[0]) is not None
               for row in rows)


def _multi_crop_cells(row: Row) -> tuple[float | None, ...]:
    paper = _paper_multi_crop(row) or (None, None)
    ours = tuple(row.metric_mean(key) for key in MULTI_CROP_METRICS)
    return ours[0], paper[0], ours[1], paper[1]


def table2_table(rows: list[Row], row_keys: tuple[str, ...]) -> Table:
    extra = ambiguous_keys(rows, row_keys)
    top5 = has_top5(rows) or any(paper_top5(row.sample) is not None for row in rows)
    multi_crop = _has_multi_crop(rows)
    columns = (Column("weights"), Column("net"), Column("data"), *(Column(k) for k in extra),
               Column("epochs"), Column("paper ep."), *RESULT_COLUMNS, *PAPER_COLUMNS,
               *(TOP5_COLUMNS if top5 else ()), *(MULTI_CROP_COLUMNS if multi_crop else ()),
               Column("paper's note"))
    table_rows = [(*paper_row_cells(row, table2_cell(row.sample), extra, aug=False),
                   *(top5_cells(row) if top5 else ()),
                   *(_multi_crop_cells(row) if multi_crop else ()), _note(row))
                  for row in sorted(rows, key=paper_order(TABLE2, table2_cell))]
    return Table("report", "Paper 1 Table 2: SVHN, ImageNet32, ImageNet and MNIST test error (%)",
                 columns, tuple(table_rows),
                 note="Top-1 error, and top-5 where the data set has more than 5 classes; "
                      "ImageNet32's is on its validation set; ImageNet's main columns are "
                      "single-crop, the 25-crop test (5 scales x 5 positions, softmax "
                      "averaged) apart. Paper values from spec 1.6; diff = ours - paper; std over "
                      "seeds (sample standard deviation).")
