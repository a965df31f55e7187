"""A table of typed cells, and its Markdown and CSV forms (the terminal form is in `show`).

Cells keep their numbers; only rendering rounds them, so the CSV carries more digits than
the Markdown and both come from the same rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

Cell = str | int | float | None


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text | error (%, 2 decimals) | delta (signed, 2 decimals) | count

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


@dataclass(frozen=True)
class Table:
    name: str  # the stem of its CSV file
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""


def cell_text(value: Cell, column: Column) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and column.kind == "error":
        return f"{value:.2f}"
    if isinstance(value, float) and column.kind == "delta":
        return f"{value:+.2f}"
    return str(value)


def markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n"

    text = line([c.name for c in table.columns])
    text += "|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|\n"
    for row in table.rows:
        text += line([cell_text(v, c) for v, c in zip(row, table.columns, strict=True)])
    return text


def csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else round(v, 6) if isinstance(v, float) else v
                         for v in row])
    return out.getvalue()


# Every results table shows our final test error as mean, spread and count over seeds.
RESULT_COLUMNS = (Column("ours (%)", "error"), Column("std", "error"), Column("n", "count"))


def difference(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else ours - paper
