"""What binwrn-report prints: the tables as rich tables, the failed jobs, where files went."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table as RichTable

from binwrn.report.build import ARTIFACT_FOLDER, Report
from binwrn.report.document import counted
from binwrn.report.table_format import Table, cell_text
from binwrn.report.tables import jobs_summary
from binwrn.terminal import console


def show_table(table: Table) -> None:
    shown = RichTable(title=escape(table.title), box=box.SIMPLE_HEAD, title_style="bold")
    for column in table.columns:
        # Fold, never truncate: a cut-off label would hide which row a number belongs to.
        shown.add_column(escape(column.name), justify="right" if column.numeric else "left",
                         no_wrap=column.numeric, overflow="fold")
    for row in table.rows:
        shown.add_row(*(escape(cell_text(v, c)) for v, c in zip(row, table.columns,
                                                                 strict=True)))
    if console.is_terminal:
        console.print(shown)
    else:  # piped into a file or a log there is no screen to fit: print the table whole
        natural = Measurement.get(console, console.options.update(width=10_000), shown)
        Console(width=max(console.width, natural.maximum)).print(shown)


def show_report(report: Report, files: list[Path], logged_on: str | None) -> None:
    selection = report.selection
    console.print(f"[bold]binwrn-report: {escape(selection.title)}[/] ({selection.kind}; "
                  f"{counted(len(report.rows), 'row')} from "
                  f"{counted(len(selection.runs), 'run')})", soft_wrap=True)
    for table in report.tables:
        if table.name != "jobs":  # the whole list is in report.md; here only what went wrong
            show_table(table)
    if selection.jobs:
        console.print(jobs_summary(selection.jobs), highlight=False)
        for job in selection.jobs:
            if job.status == "failed":
                console.print(f"  {escape(job.name)} failed: {escape(str(job.reason))}",
                              highlight=False, soft_wrap=True)
    for note in selection.notes:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"wrote {escape(str(files[0].parent))}/: "
                  + ", ".join(path.name for path in files), soft_wrap=True)
    if logged_on:
        console.print(f"logged on parent run {logged_on} under {ARTIFACT_FOLDER}/",
                      soft_wrap=True)
