"""`binwrn-migrate`: copy every run of one tracking store into another (SQLite -> server).

MLflow has no command that moves runs between backends, so this copies what a run is made of
through the client API: name, status and times, params, tags, every metric's full history,
artifacts, and the parent/child nesting (parents are re-pointed to their new ids). Each copy
is tagged `binwrn.migrated_from` with its old id, so running it again copies only what is new.
Config-hash tags travel with the runs, so finished sweep jobs stay skipped on the new store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from binwrn.errors import BinwrnError, ConfigError

ORIGIN_TAG = "binwrn.migrated_from"
PARENT_TAG = "mlflow.parentRunId"


def _already_copied(dst, experiment_id: str) -> dict[str, str]:
    runs = dst.search_runs([experiment_id], filter_string=f"tags.`{ORIGIN_TAG}` != ''",
                           max_results=50000)
    return {r.data.tags[ORIGIN_TAG]: r.info.run_id for r in runs}


def _copy_run(src, dst, run, experiment_id: str) -> str:
    from mlflow.entities import Metric, Param

    tags = {k: v for k, v in run.data.tags.items() if k != PARENT_TAG}
    tags[ORIGIN_TAG] = run.info.run_id
    new = dst.create_run(experiment_id, start_time=run.info.start_time, tags=tags,
                         run_name=run.info.run_name).info.run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    metrics = [Metric(m.key, m.value, m.timestamp, m.step)
               for key in run.data.metrics for m in src.get_metric_history(run.info.run_id, key)]
    for start in range(0, max(len(params), len(metrics)), 100):
        dst.log_batch(new, metrics=metrics[start:start + 100], params=params[start:start + 100])
    with tempfile.TemporaryDirectory() as folder:
        if src.list_artifacts(run.info.run_id):
            local = src.download_artifacts(run.info.run_id, "", folder)
            dst.log_artifacts(new, local)
    dst.set_terminated(new, run.info.status, end_time=run.info.end_time)
    return new


def migrate(src_uri: str, dst_uri: str, log=print) -> int:
    """Copy the runs of every experiment of src_uri into dst_uri; returns how many."""
    from binwrn.tracking.credentials import redact_uri
    from binwrn.tracking.store import (
        absolute_uri,
        artifact_location,
        check_reachable,
        check_store_exists,
        ensure_experiment,
        open_client,
    )

    src_uri, dst_uri = absolute_uri(src_uri), absolute_uri(dst_uri)
    if src_uri == dst_uri:  # it would copy every run in beside itself, once per call
        raise ConfigError(f"--from and --to name the same store, {redact_uri(src_uri)}: give "
                          "--to another store.")
    check_store_exists(src_uri, "--from")  # a mistyped source must not become an empty store
    for uri in (src_uri, dst_uri):
        check_reachable(uri)
    src, dst = open_client(src_uri), open_client(dst_uri)
    copied = 0
    for experiment in src.search_experiments():
        # binwrn's layout on a SQLite target (mlartifacts/ beside the file); a server decides.
        beside = Path(dst_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        location = (artifact_location(dst_uri, str(beside), experiment.name)
                    if dst_uri.startswith("sqlite:") else None)
        target = ensure_experiment(dst, experiment.name, location)
        done = _already_copied(dst, target)
        runs = src.search_runs([experiment.experiment_id], max_results=50000,
                               order_by=["attributes.start_time ASC"])
        for run in runs:
            if run.info.run_id not in done:
                done[run.info.run_id] = _copy_run(src, dst, run, target)
                copied += 1
        for run in runs:  # nesting, once every parent has its new id
            parent = run.data.tags.get(PARENT_TAG)
            if parent in done:
                dst.set_tag(done[run.info.run_id], PARENT_TAG, done[parent])
        log(f"{experiment.name}: {len(runs)} runs, now all in {redact_uri(dst_uri)}")
    return copied


def main() -> None:
    from binwrn.terminal import console, show_error

    parser = argparse.ArgumentParser(prog="binwrn-migrate", description=__doc__)
    parser.add_argument("--from", dest="src", default="sqlite:///mlflow.db",
                        help="the store to copy (default sqlite:///mlflow.db)")
    parser.add_argument("--to", dest="dst", required=True,
                        help="the store to copy into, e.g. http://127.0.0.1:5000")
    args = parser.parse_args()
    try:
        copied = migrate(args.src, args.dst, log=console.print)
    except BinwrnError as err:
        show_error(str(err), "binwrn-migrate")
        sys.exit(2)
    console.print(f"binwrn-migrate: {copied} runs copied; the source is unchanged.")
