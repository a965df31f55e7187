"""A sweep, read as its driver recorded it: the parent run, `sweep/spec.yaml` (its `report`
section says the kind of table and the label keys of a row) and `sweep/jobs.json` (one entry
per job, with its labels, status and run id)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from binwrn.errors import ConfigError, DataError
from binwrn.report.runs import RunResult, read_run
from binwrn.report.search import PARENT_ROLE, all_runs, experiment_ids, is_parent
from binwrn.report.selection import KINDS, Job, Selection
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.lookup import fetch_artifact

SWEEP_TAG = "binwrn.sweep"
SMOKE_TAG = "binwrn.smoke"
RUN_ID = re.compile(r"[0-9a-f]{32}")


def find_parent(client: MlflowClient, uri: str, name_or_id: str,
                experiment: str | None = None) -> Run:
    """The parent run with this id, else the newest parent of the sweep with this name."""
    if RUN_ID.fullmatch(name_or_id):
        try:
            run = client.get_run(name_or_id)
        except MlflowException:
            run = None  # not an id in this store: perhaps a sweep's name
        if run is not None:
            if not is_parent(run):
                raise ConfigError(f"Run {name_or_id} is not a sweep's parent run (its tag "
                                  f"{PARENT_ROLE[0]} is not 'parent'): pass the parent's id "
                                  "or the sweep's name.")
            return run
    # Parents are few: compare the name here rather than quote it into a filter string.
    parents = all_runs(client, experiment_ids(client, uri, experiment),
                       f"tags.`{PARENT_ROLE[0]}` = '{PARENT_ROLE[1]}'",
                       ["attributes.start_time DESC"])
    for run in parents:
        if run.data.tags.get(SWEEP_TAG) == name_or_id:
            return run
    known = sorted({run.data.tags.get(SWEEP_TAG, "?") for run in parents})
    raise ConfigError(f"No sweep named {name_or_id} in the tracking store {redact_uri(uri)} "
                      f"(sweeps there: {', '.join(known) or 'none'}): check the name or pass "
                      "--tracking-uri.")


def _artifact_text(uri: str, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory() as folder:
        local = fetch_artifact(uri, run_id, path, Path(folder))
        return local.read_text() if local is not None and local.is_file() else None


def _parse_jobs(text: str, run_id: str) -> tuple[Job, ...]:
    try:
        entries = json.loads(text)
        return tuple(Job(name=str(e["job"]), labels=dict(e.get("labels") or {}),
                         status=str(e["status"]), run_id=e.get("run_id"),
                         reason=e.get("reason")) for e in entries)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise DataError(f"The sweep's sweep/jobs.json on run {run_id} is not a list of jobs "
                        f"({type(err).__name__}: {err}): re-run the sweep driver.") from None


def _report_spec(text: str | None, run_id: str) -> dict:
    if text is None:
        return {}
    try:
        spec = yaml.safe_load(text) or {}
        return dict(spec.get("report") or {})
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as err:
        raise DataError(f"The sweep's sweep/spec.yaml on run {run_id} cannot be read "
                        f"({str(err).splitlines()[0]}): re-run the sweep driver.") from None


def _job_results(client: MlflowClient, jobs: tuple[Job, ...]) -> tuple[list[RunResult], list]:
    """Results of the jobs that have one (finished, or skipped onto an earlier finished run);
    one run counts once even when two jobs point at it."""
    results, notes, seen = [], [], set()
    for job in jobs:
        if job.status not in ("finished", "skipped") or not job.run_id or job.run_id in seen:
            continue
        seen.add(job.run_id)
        try:
            result = read_run(client, client.get_run(job.run_id), job.labels)
        except MlflowException:
            notes.append(f"{job.name}: its run {job.run_id} is not in this store; left out.")
            continue
        if result.final_error is None:
            notes.append(f"{job.name}: run {job.run_id} has no test_final/error_pct; left out.")
            continue
        results.append(result)
    return results, notes


def sweep_selection(client: MlflowClient, uri: str, parent: Run) -> Selection:
    run_id = parent.info.run_id
    jobs_text = _artifact_text(uri, run_id, "sweep/jobs.json")
    if jobs_text is None:
        raise DataError(f"Run {run_id} has no sweep/jobs.json artifact: it is not a sweep "
                        "the driver finished writing, or its artifacts were moved.")
    jobs = _parse_jobs(jobs_text, run_id)
    spec_text = _artifact_text(uri, run_id, "sweep/spec.yaml")
    spec = _report_spec(spec_text, run_id)
    name = parent.data.tags.get(SWEEP_TAG, run_id)
    notes = [] if spec_text is not None else ["The parent has no sweep/spec.yaml: a generic "
                                              "report, one row per label combination."]
    kind = str(spec.get("kind", "generic"))
    if kind not in KINDS:
        notes.append(f"report.kind={kind} is not one of {', '.join(KINDS)}: reported as generic.")
        kind = "generic"
    label_keys = list(dict.fromkeys(k for job in jobs for k in job.labels))
    row_keys = tuple(k for k in (spec.get("rows") or label_keys) if k != "seed")
    results, run_notes = _job_results(client, jobs)
    if not results:
        failed = [job for job in jobs if job.status == "failed"]
        why = (f"all {len(jobs)} of its jobs failed (first: {failed[0].name}: "
               f"{failed[0].reason})" if failed and len(failed) == len(jobs)
               else f"none of its {len(jobs)} jobs has a finished run with test_final/error_pct")
        raise DataError(f"Sweep {name} (parent run {run_id}) has nothing to report: {why}.")
    return Selection(
        title=name, kind=kind, row_keys=row_keys, runs=tuple(results), jobs=jobs,
        source=f"sweep `{name}`, parent run `{run_id}` in `{redact_uri(uri)}`",
        parent_run_id=run_id,
        smoke=parent.data.tags.get(SMOKE_TAG, "false").lower() == "true",
        notes=tuple(notes + run_notes),
    )
