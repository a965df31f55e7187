"""`binwrn-report`: tables and figures from a sweep, an experiment or an MLflow filter."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from binwrn.errors import BinwrnError
from binwrn.terminal import show_error

PROG = "binwrn-report"
DEFAULT_EXPERIMENT = "binwrn"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Paper-style tables (ours, the paper's, the difference) and figures from "
                    "tracked runs: report.md, CSV files and PNGs in one folder.",
        epilog="examples: binwrn-report --sweep p1_fig6_ablation | binwrn-report --experiment "
               "binwrn | binwrn-report --filter \"params.`model.bits` = '1'\" --experiment "
               "binwrn | binwrn-report --references")
    parser.add_argument("--references", action="store_true",
                        help="log the papers' published numbers (tables and learning curves) "
                             "as runs of the experiment 'paper references', under the metric "
                             "keys binwrn's runs log, so the MLflow UI draws them beside yours; "
                             "a second call adds nothing")
    parser.add_argument("--sweep", metavar="NAME_OR_RUN_ID",
                        help="a sweep's name (its newest parent run) or its parent run's id")
    parser.add_argument("--experiment", nargs="?", const=DEFAULT_EXPERIMENT, metavar="NAME",
                        help="the finished runs of this experiment (default name: "
                             f"{DEFAULT_EXPERIMENT}); with --sweep, where to look for it")
    parser.add_argument("--filter", metavar="MLFLOW_FILTER",
                        help="the finished runs matching this MLflow filter string (in all "
                             "experiments, or in --experiment)")
    parser.add_argument("--tracking-uri", help="the store the runs are in (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--out", type=Path, help="folder for the report (default: "
                        "reports/<sweep or experiment>)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report on the sweep's parent run")
    args = parser.parse_args()
    if args.sweep and args.filter:
        parser.error("--sweep and --filter choose runs in two ways: give one of them")
    if not (args.sweep or args.experiment or args.filter or args.references):
        parser.error("say which runs: --sweep NAME, --experiment NAME or --filter FILTER (or "
                     "--references to log the papers' numbers)")
    return args


def _default_out(title: str) -> Path:
    return Path("reports") / (re.sub(r"[^\w.-]+", "_", title).strip("_") or "report")


def _log_references(client, uri: str) -> None:
    from binwrn.report.references import log_paper_references
    from binwrn.tracking.credentials import redact_uri
    from binwrn.tracking.references import REFERENCE_EXPERIMENT

    logged = log_paper_references(client, uri)
    changed = f", {logged.replaced} replaced by corrected numbers" if logged.replaced else ""
    print(f"Paper references in {redact_uri(uri)}, experiment '{REFERENCE_EXPERIMENT}' "
          f"(id {logged.experiment_id}): {logged.added} added{changed}, {logged.kept} already "
          "there.")


def main() -> None:
    args = _args()
    try:
        # MLflow and matplotlib load here, after argparse has answered --help and misuse.
        from binwrn.report.build import build_report, log_report, open_store, write_report
        from binwrn.report.search import runs_selection
        from binwrn.report.show import show_report
        from binwrn.report.sweep import find_parent, sweep_selection

        client, uri = open_store(args.tracking_uri, create=args.references)
        if args.references:
            _log_references(client, uri)
            if not (args.sweep or args.experiment or args.filter):
                return
        if args.sweep:
            selection = sweep_selection(
                client, uri, find_parent(client, uri, args.sweep, args.experiment))
        else:
            selection = runs_selection(client, uri, args.experiment, args.filter)
        report = build_report(selection)
        files = write_report(report, args.out or _default_out(selection.title))
        logged_on = None
        if selection.parent_run_id and not args.no_log:
            log_report(client, selection.parent_run_id, files)
            logged_on = selection.parent_run_id
    except BinwrnError as err:
        show_error(str(err), PROG)
        sys.exit(2)
    show_report(report, files, logged_on)
