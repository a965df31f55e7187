"""A report from a selection of runs: tables and figures written to a folder, and, for a
sweep, logged on its parent run under `report/`. Nothing here prints: the caller decides
what a person sees (binwrn-report shows the tables; a sweep driver may show nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from binwrn.errors import ConfigError, DataError
from binwrn.report import figures
from binwrn.report.document import report_markdown
from binwrn.report.rows import BitsPair, Row, bits_pairs, group_rows
from binwrn.report.selection import Selection
from binwrn.report.sweep import find_parent, sweep_selection
from binwrn.report.table_format import Table, csv_text
from binwrn.report.tables import result_tables
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.lookup import resolve_uri
from binwrn.tracking.store import open_client

ARTIFACT_FOLDER = "report"
MAX_BAR_ROWS = 16  # beyond this a bar chart is no longer readable
# Every file a report may write, so a new report in the same folder leaves no stale one.
REPORT_FILES = ("report.md", "report.csv", "final.csv", "effects.csv", "gap.csv", "jobs.csv",
                "orders.csv",
                "error_vs_epoch.png", "gap_vs_width.png", "ablation_bars.png",
                "final_error_bars.png")


@dataclass(frozen=True)
class Report:
    selection: Selection
    rows: list[Row]
    pairs: list[BitsPair]
    tables: list[Table]  # the first is the kind's main table, written as report.csv


def build_report(selection: Selection) -> Report:
    if not selection.runs:
        raise DataError(f"None of the runs of {selection.title} has a test_final/error_pct to "
                        "report: they did not finish a test.")
    rows = group_rows(selection.runs, selection.row_keys)
    pairs = bits_pairs(selection.runs)
    return Report(selection, rows, pairs, result_tables(selection, rows, pairs))


def _draw_figures(report: Report, out: Path) -> tuple[list[tuple[str, str]], list[str]]:
    title = report.selection.title
    drawn = [(figures.error_vs_epoch(report.rows, title, out / "error_vs_epoch.png").name,
              "test error (%) vs epoch per run; solid fp32, dashed 1-bit; dotted lines after "
              "the epochs where SGDR restarted")]
    skipped = []
    if report.pairs:
        drawn.append((figures.gap_vs_width(report.pairs, title, out / "gap_vs_width.png").name,
                      "1-bit minus fp32 test error vs width, with the paper's Fig. 1 points"))
    else:
        skipped.append("gap_vs_width.png is not drawn: no two runs differ only in model.bits.")
    bars = "ablation_bars.png" if report.selection.kind == "ablation" else "final_error_bars.png"
    if report.selection.kind == "ablation" or len(report.rows) <= MAX_BAR_ROWS:
        drawn.append((figures.error_bars(report.rows, title, out / bars).name,
                      "final test error (%) per row, whiskers one std over seeds"))
    return drawn, skipped


def write_report(report: Report, out: Path) -> list[Path]:
    """report.md, one CSV per table (report.csv first) and the PNGs; returns the files."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:
            (out / name).unlink(missing_ok=True)
        drawn, skipped = _draw_figures(report, out)
        text = report_markdown(report.selection, len(report.rows), report.tables, drawn,
                               skipped)
        (out / "report.md").write_text(text)
        for table in report.tables:
            (out / f"{table.name}.csv").write_text(csv_text(table))
    except OSError as err:
        raise ConfigError(f"The report folder {out} cannot be written "
                          f"({err.strerror or err}): pass --out with a folder you can write "
                          "to.") from None
    return [out / "report.md", *(out / f"{t.name}.csv" for t in report.tables),
            *(out / name for name, _ in drawn)]


def log_report(client: MlflowClient, run_id: str, files: list[Path]) -> None:
    try:
        for path in files:
            client.log_artifact(run_id, str(path), ARTIFACT_FOLDER)
    except (MlflowException, OSError) as err:
        raise ConfigError(f"The report could not be logged on run {run_id} "
                          f"({str(err).splitlines()[0]}); it is written in {files[0].parent}: "
                          "pass --no-log to skip logging.") from None


def open_store(uri: str | None, create: bool = False) -> tuple[MlflowClient, str]:
    """A client on the store `uri` (None: $MLFLOW_TRACKING_URI, else ./mlflow.db), refusing a
    SQLite file that is not there rather than creating an empty store, unless `create`."""
    uri = resolve_uri(uri, must_exist=not create)
    try:
        return open_client(uri), uri
    except (MlflowException, OSError) as err:
        raise ConfigError(redact_uri(f"The tracking store {uri} cannot be opened "
                          f"({str(err).splitlines()[0]}): pass --tracking-uri.")) from None


def report_sweep(uri: str, parent_run_id: str, out_dir: Path, log: bool = True) -> Path:
    """Report on a sweep from its parent run; the sweep driver calls this when it ends.

    Writes the tables and figures into `out_dir` and returns it; with `log`, also logs them
    on the parent run under `report/`. User-level problems (no such parent, no finished job,
    an unwritable folder) raise `BinwrnError` subclasses with one sentence each.
    """
    client, uri = open_store(uri)
    parent = find_parent(client, uri, parent_run_id)
    report = build_report(sweep_selection(client, uri, parent))
    files = write_report(report, Path(out_dir))
    if log:
        log_report(client, parent.info.run_id, files)
    return Path(out_dir)
