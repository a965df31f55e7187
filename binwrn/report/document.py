"""report.md: where the runs come from, the tables, the figures, and what was left out."""

from __future__ import annotations

from datetime import UTC, datetime

from binwrn.report.selection import Selection
from binwrn.report.table_format import Table, markdown
from binwrn.report.tables import jobs_summary


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _header(selection: Selection, n_rows: int) -> str:
    keys = ", ".join(f"`{k}`" for k in selection.row_keys)
    rows = f"a row is one combination of {keys}" if keys else "all runs share one row"
    lines = [f"# binwrn report: {selection.title}", "",
             f"- Runs: {selection.source}.",
             f"- Kind: {selection.kind}; {rows}: {counted(n_rows, 'row')} from "
             f"{counted(len(selection.runs), 'run')} (seeds of a row give its mean and spread)."]
    if selection.jobs:
        lines.append(f"- Jobs: {jobs_summary(selection.jobs)}.")
    if selection.smoke:
        lines.append("- **Smoke sweep**: shortened budgets and data; its numbers test the "
                     "pipeline and are not comparable with the paper's.")
    lines.append(f"- Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by binwrn-report; test "
                 "error is the final test after BN statistics are recomputed.")
    return "\n".join(lines) + "\n"


def _section(table: Table) -> str:
    text = f"\n## {table.title}\n\n{markdown(table)}"
    return text + (f"\n{table.note}\n" if table.note else "")


def report_markdown(selection: Selection, n_rows: int, tables: list[Table],
                    figures: list[tuple[str, str]], skipped: list[str]) -> str:
    """`figures` are (file name, caption) of the PNGs beside report.md."""
    text = _header(selection, n_rows) + "".join(_section(t) for t in tables)
    text += "\n## Figures\n"
    for name, caption in figures:
        text += f"\n![{caption}]({name})\n\n*{name}: {caption}*\n"
    if skipped:
        text += "\n" + "".join(f"- {line}\n" for line in skipped)
    if selection.notes:
        text += "\n## Notes\n\n" + "".join(f"- {note}\n" for note in selection.notes)
    return text
