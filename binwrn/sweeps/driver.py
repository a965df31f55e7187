"""Run a sweep: plan its jobs, skip the finished ones, launch the rest, record the outcome.

Order (ecosystem-notes 2.3.3-5): the store is opened and migrated, the experiment and the
sweep's parent run are created before any job starts, so parallel jobs never race on the
SQLite schema or the experiment. Jobs nest under the parent through `sweep.parent_run_id`.
Skipping is decided here, from the config hash of each composed job, so a sweep whose jobs
all finished launches nothing and ends in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from binwrn.conf_files import compose, conf_dir
from binwrn.config import config_hash
from binwrn.errors import ConfigError
from binwrn.sweeps.plan import GROUP, write_plan
from binwrn.sweeps.slurm import check_jobs_fit, slurm_job_shape, uses_slurm
from binwrn.sweeps.spec import Job, SweepSpec

PARENT_ROLE_TAG = "binwrn.sweep_role"


@dataclass
class JobOutcome:
    job: str
    labels: dict
    overrides: list[str]
    config_hash: str
    status: str  # finished | skipped | failed
    run_id: str | None = None
    reason: str | None = None
    test_error_pct: float | None = None


@dataclass
class SweepRequest:
    spec: SweepSpec
    smoke: bool = False
    force: bool = False
    launcher: list[str] | None = None      # e.g. hydra/launcher=joblib hydra.launcher.n_jobs=2
    overrides: list[str] | None = None     # the user's, applied to every job, last
    root: Path = Path("outputs/sweeps")


def _shared_overrides(request: SweepRequest) -> list[str]:
    """What every job gets on the launch command line (after its own file, so it wins)."""
    smoke = request.spec.smoke if request.smoke else []
    return [*smoke, *(request.overrides or [])]


def _compose_jobs(jobs: list[Job], plan_dir: Path, shared: list[str]) -> dict[str, object]:
    composed = {}
    for job in jobs:
        try:
            composed[job.job_id] = compose([f"+{GROUP}={job.job_id}",
                                            f"hydra.searchpath=[file://{plan_dir}]", *shared])
        except ConfigError as err:
            raise ConfigError(f"{job.job_id} ({' '.join(job.overrides)}): {err}") from None
    return composed


def _finished_runs(client, experiment_id: str, hashes: set[str]) -> dict[str, tuple]:
    """config hash -> (run id, final test error) of the newest FINISHED run with it."""
    found = {}
    for digest in hashes:
        runs = client.search_runs(
            [experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.`binwrn.config_hash` = '{digest}' and "
                          "attributes.status = 'FINISHED'")
        if runs:
            found[digest] = (runs[0].info.run_id, runs[0].data.metrics.get("test/error_pct"))
    return found


def _launch(request: SweepRequest, pending: list[Job], plan_dir: Path, jobs_dir: Path,
            parent_id: str, shared: list[str]) -> int:
    command = [
        str(Path(sys.executable).with_name("binwrn-run")), "-m",
        f"+{GROUP}={','.join(j.job_id for j in pending)}",
        f"hydra.searchpath=[file://{plan_dir}]", f"hydra.sweep.dir={jobs_dir}",
        f"sweep.name={request.spec.name}", f"sweep.parent_run_id={parent_id}",
        f"sweep.smoke={str(request.smoke).lower()}",
        *(["resume=false"] if request.force else []),
        *shared, *(request.launcher or []),
    ]
    (jobs_dir.parent / "launch_command.txt").write_text(" ".join(command) + "\n")
    return subprocess.run(command).returncode


def _read_outcomes(jobs_dir: Path) -> dict[str, dict]:
    outcomes = {}
    for path in jobs_dir.glob("*/outcome.json"):
        data = json.loads(path.read_text())
        outcomes[data["job"]] = data
    return outcomes


class SweepRun:
    """The parent run's life: created first, jobs nested under it, status at the end."""

    def __init__(self, client, experiment_id: str, spec: SweepSpec, smoke: bool, jobs: int):
        from binwrn.tracking.provenance import git_state

        name = f"sweep:{spec.name}" + (" (smoke)" if smoke else "")
        tags = {PARENT_ROLE_TAG: "parent", "binwrn.sweep": spec.name,
                "binwrn.smoke": str(smoke).lower(), **git_state(spec.path.parent)}
        self.client = client
        self.run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        client.log_param(self.run_id, "sweep.name", spec.name)
        client.log_param(self.run_id, "sweep.jobs", jobs)
        client.log_param(self.run_id, "sweep.smoke", smoke)
        client.log_text(self.run_id, spec.text, "sweep/spec.yaml")

    def record(self, outcomes: list[JobOutcome]) -> None:
        self.client.log_text(self.run_id, json.dumps([asdict(o) for o in outcomes], indent=2),
                             "sweep/jobs.json")

    def finish(self, outcomes: list[JobOutcome]) -> None:
        counts = {s: sum(o.status == s for o in outcomes)
                  for s in ("finished", "skipped", "failed")}
        for status, n in counts.items():
            self.client.log_metric(self.run_id, f"sweep/{status}", n)
        if counts["failed"]:
            self.client.set_tag(self.run_id, "binwrn.failure_reason",
                                f"{counts['failed']} of {len(outcomes)} jobs failed")
        self.client.set_terminated(self.run_id, "FAILED" if counts["failed"] else "FINISHED")

    def abort(self, status: str, reason: str) -> None:
        self.client.set_tag(self.run_id, "binwrn.failure_reason", reason)
        self.client.set_terminated(self.run_id, status)


def _duplicates(jobs: list[Job], hashes: dict[str, str]) -> dict[str, str]:
    """job -> the earlier job of this sweep with the identical config (trained only once)."""
    first: dict[str, str] = {}
    for job in jobs:
        first.setdefault(hashes[job.job_id], job.job_id)
    return {j.job_id: first[hashes[j.job_id]] for j in jobs
            if first[hashes[j.job_id]] != j.job_id}


def _settle(jobs: list[Job], hashes: dict[str, str], skipped: dict[str, tuple],
            duplicates: dict[str, str], reported: dict[str, dict], launch_rc: int | None,
            jobs_dir: Path) -> list[JobOutcome]:
    outcomes = []
    for job in (j for j in jobs if j.job_id not in duplicates):
        outcome = JobOutcome(job.job_id, job.labels, job.overrides, hashes[job.job_id],
                             "failed")
        if job.job_id in skipped:
            outcome.status = "skipped"
            outcome.run_id, outcome.test_error_pct = skipped[job.job_id]
        elif job.job_id in reported:
            got = reported[job.job_id]
            outcome.status, outcome.run_id = got["status"], got["run_id"]
            outcome.reason, outcome.test_error_pct = got["reason"], got["test_error_pct"]
        else:
            outcome.reason = (f"the job left no outcome (launcher exit {launch_rc}; its log "
                              f"is under {jobs_dir})")
        outcomes.append(outcome)
    by_id = {o.job: o for o in outcomes}
    for job in (j for j in jobs if j.job_id in duplicates):
        original = by_id[duplicates[job.job_id]]
        status = "failed" if original.status == "failed" else "skipped"
        outcomes.append(JobOutcome(job.job_id, job.labels, job.overrides, hashes[job.job_id],
                                   status, original.run_id,
                                   f"same config as {original.job}", original.test_error_pct))
    order = {j.job_id: i for i, j in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.job])


def run_sweep(
    request: SweepRequest, before_close: Callable[[str, str], None] | None = None
) -> tuple[str, list[JobOutcome], Path]:
    """(parent run id, one outcome per job, the sweep's folder).

    `before_close(uri, parent_run_id)` runs once the jobs are recorded on the parent and
    before its status is set: the report, logged onto the open parent."""
    from binwrn.tracking.store import (
        absolute_uri,
        artifact_location,
        check_reachable,
        ensure_experiment,
        open_client,
    )

    spec = request.spec
    jobs = spec.jobs()
    started = datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
    sweep_dir = (request.root / spec.name / started).resolve()
    plan_dir = write_plan(jobs, sweep_dir / "plan", conf_dir(), request.smoke)
    shared = _shared_overrides(request)
    composed = _compose_jobs(jobs, plan_dir, shared)
    hashes = {job_id: config_hash(cfg) for job_id, cfg in composed.items()}
    if uses_slurm(request.launcher or []):  # one size for all jobs: refused before any run
        check_jobs_fit(slurm_job_shape([*shared, *request.launcher]), composed)
    tracking = next(iter(composed.values())).tracking
    uri = absolute_uri(tracking.uri)
    check_reachable(uri)
    client = open_client(uri)
    experiment_id = ensure_experiment(
        client, tracking.experiment,
        artifact_location(uri, tracking.artifact_root, tracking.experiment))
    done = {} if request.force else _finished_runs(client, experiment_id, set(hashes.values()))
    skipped = {j.job_id: done[hashes[j.job_id]] for j in jobs if hashes[j.job_id] in done}
    parent = SweepRun(client, experiment_id, spec, request.smoke, len(jobs))
    duplicates = _duplicates(jobs, hashes)
    pending = [j for j in jobs if j.job_id not in skipped and j.job_id not in duplicates]
    jobs_dir = sweep_dir / "jobs"
    launch_rc = None
    try:
        if pending:
            launch_rc = _launch(request, pending, plan_dir, jobs_dir, parent.run_id, shared)
    except KeyboardInterrupt:
        parent.abort("KILLED", "interrupted by the user")
        raise
    outcomes = _settle(jobs, hashes, skipped, duplicates, _read_outcomes(jobs_dir), launch_rc,
                       jobs_dir)
    parent.record(outcomes)
    try:
        if before_close is not None and any(o.run_id for o in outcomes):
            before_close(uri, parent.run_id)
    finally:
        parent.finish(outcomes)
    return parent.run_id, outcomes, sweep_dir


def check_request(request: SweepRequest) -> None:
    if request.smoke and not request.spec.smoke:
        raise ConfigError(f"{request.spec.path} has no smoke overrides: add a smoke: list "
                          "to shrink it, or run it without SMOKE=1.")
