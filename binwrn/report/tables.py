"""Which tables a report holds, by the kind its sweep file names (or its runs suggest)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from binwrn.report.ablation import ablation_table, effects_table
from binwrn.report.convergence import convergence_table
from binwrn.report.paper_tables import gap_table, generic_table, table1_table
from binwrn.report.rows import BitsPair, Row
from binwrn.report.selection import Job, Selection
from binwrn.report.sensitivity import orders_table, sensitivity_table
from binwrn.report.table2 import table2_table
from binwrn.report.table_format import Column, Table

STATUSES = ("finished", "skipped", "failed")


def jobs_summary(jobs: tuple[Job, ...]) -> str:
    counts = Counter(job.status for job in jobs)
    known = [f"{counts[s]} {s}" for s in STATUSES]
    other = [f"{n} {s}" for s, n in counts.items() if s not in STATUSES]
    return f"{len(jobs)} jobs: " + ", ".join(known + other)


def jobs_table(jobs: tuple[Job, ...]) -> Table:
    columns = (Column("job"), Column("labels"), Column("status"), Column("run"),
               Column("reason"))
    rows = tuple((job.name, ", ".join(f"{k}={v}" for k, v in job.labels.items()), job.status,
                  job.run_id, job.reason) for job in jobs)
    return Table("jobs", "Jobs", columns, rows, note=jobs_summary(jobs) + ". Skipped: an "
                 "identical config had already finished, and that run is reported.")


def result_tables(selection: Selection, rows: list[Row], pairs: list[BitsPair]) -> list[Table]:
    """The kind's tables first (the first is report.csv), then the 1-bit gap, then the jobs."""
    keys = selection.row_keys
    if selection.kind == "table1":
        tables = [table1_table(rows, keys)]
    elif selection.kind == "table2":
        tables = [table2_table(rows, keys)]
    elif selection.kind == "ablation":
        tables = [ablation_table(rows, keys), effects_table(selection.runs)]
    elif selection.kind == "sensitivity":
        tables = [sensitivity_table(rows), orders_table(rows)]
    elif selection.kind == "convergence":
        tables = [convergence_table(rows), replace(generic_table(rows, keys), name="final")]
    else:
        tables = [generic_table(rows, keys)]
    if pairs:
        tables.append(gap_table(pairs))
    if selection.jobs:
        tables.append(jobs_table(selection.jobs))
    return tables
