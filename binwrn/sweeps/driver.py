"""Run a sweep: plan its jobs, skip the finished ones, launch the rest, record the outcome.

Order (ecosystem-notes 2.3.3-5): the store is opened and migrated, the experiment and the
sweep's parent run are created before any job starts, so parallel jobs never race on the
SQLite schema or the experiment. Jobs nest under the parent through `sweep.parent_run_id`.
Skipping is decided here, from the config hash of each composed job, so a sweep whose jobs
all finished launches nothing and ends in seconds.

SIGTERM, SIGINT (Ctrl-C) or SIGHUP of the sweep, once its parent run exists, is passed to the
jobs' process group (a job in training saves `last.ckpt` and records KILLED); what is left
after `STOP_GRACE_S` is SIGKILLed, then the parent and every child still RUNNING are marked
KILLED and the sweep ends with one sentence. The same command resumes them. Jobs on SLURM
run on the cluster, out of reach: they keep running, and only the parent is marked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from binwrn.configuration.checks import check_values
from binwrn.configuration.compose import compose, conf_dir
from binwrn.configuration.identity import config_hash
from binwrn.errors import BinwrnError, ConfigError
from binwrn.sweeps.job_table import read_outcomes
from binwrn.sweeps.plan import GROUP, write_plan
from binwrn.sweeps.slurm import SlurmJobShape, check_jobs_fit, slurm_job_shape, uses_slurm
from binwrn.sweeps.spec import Job, SweepSpec
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.metrics import final_value

PARENT_ROLE_TAG = "binwrn.sweep_role"
STOP_GRACE_S = 120  # after a SIGTERM/SIGINT, seconds the jobs get to save and record KILLED
RESEND_S = 2  # the signal again every this many seconds: it also stops the next job, if any


class SweepInterrupted(BinwrnError):
    """The sweep was stopped by a signal; the message says what was recorded."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# SIGHUP too: the jobs' own process group no longer gets the terminal's hang-up.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def _signals_raise():
    """Inside, SIGTERM, SIGINT and SIGHUP raise SweepInterrupted (the default SIGTERM ends
    Python without a word, leaving the parent RUNNING forever)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SweepInterrupted(signum)

    saved = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)


def _stop_jobs(proc: subprocess.Popen, signum: int) -> None:
    """Pass `signum` to the jobs' process group until it exits, then SIGKILL what is left."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    signum = signal.SIGTERM if signum == signal.SIGHUP else signum  # a job saves on SIGTERM
    deadline = time.monotonic() + STOP_GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=RESEND_S)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # joblib or submitit workers still there
    proc.wait()
NOT_RUN = "not run"
STATUSES = ("finished", "skipped", "failed", NOT_RUN)


@dataclass
class JobOutcome:
    job: str
    labels: dict
    overrides: list[str]
    config_hash: str
    status: str  # finished | skipped | failed | not run (the launcher never started it)
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


def _composed_and_sized(request: SweepRequest, jobs: list[Job], plan_dir: Path
                        ) -> tuple[list[str], dict[str, object], SlurmJobShape | None]:
    """The overrides every job shares, each job's composed config, and the one SLURM size
    submitit gives them all (None without --launcher slurm); a job that does not fit that size
    is refused here, before any run."""
    shared = _shared_overrides(request)
    composed = _compose_jobs(jobs, plan_dir, shared)
    shape = None
    if uses_slurm(request.launcher or []):
        shape = slurm_job_shape([*shared, *request.launcher])
        check_jobs_fit(shape, composed)
    return shared, composed, shape


def preview(request: SweepRequest) -> list[str]:
    """`binwrn-sweep ... --dry-run`: the jobs the sweep composes and, for `--launcher slurm`,
    what each would be submitted with. Opens no store, creates no run, submits nothing."""
    jobs = request.spec.jobs()
    with tempfile.TemporaryDirectory() as folder:
        plan_dir = write_plan(jobs, Path(folder), conf_dir(), request.smoke)
        _, composed, shape = _composed_and_sized(request, jobs, plan_dir)
    for job in jobs:  # a run fails its bad job alone; a dry run says so now
        try:
            check_values(composed[job.job_id])
        except ConfigError as err:
            raise ConfigError(f"{job.job_id} ({' '.join(job.overrides)}): {err}") from None
    smoke = " (smoke)" if request.smoke else ""
    lines = [f"{request.spec.name}{smoke}: {len(jobs)} jobs"]
    lines += [f"  {job.job_id}  {' '.join(job.overrides)}" for job in jobs]
    if request.smoke:
        lines.append(f"every job adds the smoke overrides: {' '.join(request.spec.smoke)}")
    if shape is not None:
        lines += [f"SLURM, each job: {shape.describe()}", shape.sbatch_header()]
    return lines


def _finished_runs(client, experiment_id: str, hashes: set[str]) -> dict[str, tuple]:
    """config hash -> (run id, final test error) of the newest FINISHED run with it."""
    found = {}
    for digest in hashes:
        runs = client.search_runs(
            [experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.`binwrn.config_hash` = '{digest}' and "
                          "attributes.status = 'FINISHED'")
        if runs:
            found[digest] = (runs[0].info.run_id, final_value(runs[0].data.metrics))
    return found


def _first_use_references(client, uri: str, artifact_root: str) -> None:
    """The papers' numbers as reference runs, on a store's first sweep, so the UI draws them
    beside the sweep's runs (`binwrn-report --references` logs them on demand). A store whose
    reference experiment exists, or was deleted by its user, is left as it is."""
    from binwrn.report.references import log_paper_references
    from binwrn.tracking.references import references_logged

    if not references_logged(client):
        log_paper_references(client, uri, artifact_root)


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
    (jobs_dir.parent / "launch_command.txt").write_text(redact_uri(" ".join(command)) + "\n")
    proc = subprocess.Popen(command, process_group=0)  # its own group: signals reach all jobs
    try:
        return proc.wait()
    except SweepInterrupted as stop:
        _stop_jobs(proc, stop.signum)
        raise


def _read_outcomes(jobs_dir: Path) -> dict[str, dict]:
    """Each job's outcome.json, by the sweep's job id (binwrn.cli writes one per job)."""
    return {outcome["job"]: outcome for outcome in read_outcomes(jobs_dir)}


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
        counts = {s: sum(o.status == s for o in outcomes) for s in STATUSES}
        for status, n in counts.items():
            self.client.log_metric(self.run_id, f"sweep/{status.replace(' ', '_')}", n)
        unfinished = [f"{counts[s]} of {len(outcomes)} jobs {s}" for s in ("failed", NOT_RUN)
                      if counts[s]]
        if unfinished:
            self.client.set_tag(self.run_id, "binwrn.failure_reason", "; ".join(unfinished))
        self.client.set_terminated(self.run_id, "FAILED" if unfinished else "FINISHED")

    def abort(self, status: str, reason: str) -> None:
        self.client.set_tag(self.run_id, "binwrn.failure_reason", reason)
        self.client.set_terminated(self.run_id, status)

    def kill_children(self, experiment_id: str, reason: str) -> list[str]:
        """Mark this sweep's jobs still RUNNING (their processes are gone) KILLED."""
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}' and "
                                           "attributes.status = 'RUNNING'", max_results=10000)
        for run in runs:
            self.client.set_tag(run.info.run_id, "binwrn.failure_reason", reason)
            self.client.set_terminated(run.info.run_id, "KILLED")
        return [r.info.run_id for r in runs]


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
    # Hydra numbers the launched jobs 0, 1, ... and makes a job's folder when it starts it.
    launched = [j.job_id for j in jobs if j.job_id not in skipped and j.job_id not in duplicates]
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
        elif not (jobs_dir / str(launched.index(job.job_id))).is_dir():
            outcome.status = NOT_RUN
            outcome.reason = f"never started (launcher exit {launch_rc})"
        else:
            outcome.reason = (f"the job left no outcome (launcher exit {launch_rc}; its log "
                              f"is under {jobs_dir})")
        outcomes.append(outcome)
    by_id = {o.job: o for o in outcomes}
    for job in (j for j in jobs if j.job_id in duplicates):
        original = by_id[duplicates[job.job_id]]
        status = original.status if original.status in ("failed", NOT_RUN) else "skipped"
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
        artifact_location,
        ensure_experiment,
        open_client,
        store_uri,
    )

    spec = request.spec
    jobs = spec.jobs()
    started = datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
    sweep_dir = (request.root / spec.name / started).resolve()
    plan_dir = write_plan(jobs, sweep_dir / "plan", conf_dir(), request.smoke)
    shared, composed, _ = _composed_and_sized(request, jobs, plan_dir)
    hashes = {job_id: config_hash(cfg) for job_id, cfg in composed.items()}
    tracking = next(iter(composed.values())).tracking
    uri = store_uri(tracking.uri)
    client = open_client(uri)
    experiment_id = ensure_experiment(
        client, tracking.experiment,
        artifact_location(uri, tracking.artifact_root, tracking.experiment))
    _first_use_references(client, uri, tracking.artifact_root)
    done = {} if request.force else _finished_runs(client, experiment_id, set(hashes.values()))
    skipped = {j.job_id: done[hashes[j.job_id]] for j in jobs if hashes[j.job_id] in done}
    with _signals_raise():
        parent = SweepRun(client, experiment_id, spec, request.smoke, len(jobs))
        try:
            outcomes = _run_jobs(request, parent, jobs, hashes, skipped, plan_dir, sweep_dir,
                                 shared, uri, before_close)
        except SweepInterrupted as stop:
            raise _interrupted(request, parent, experiment_id, stop) from None
    return parent.run_id, outcomes, sweep_dir


def _run_jobs(request: SweepRequest, parent: SweepRun, jobs: list[Job], hashes: dict,
              skipped: dict, plan_dir: Path, sweep_dir: Path, shared: list[str], uri: str,
              before_close: Callable[[str, str], None] | None) -> list[JobOutcome]:
    duplicates = _duplicates(jobs, hashes)
    pending = [j for j in jobs if j.job_id not in skipped and j.job_id not in duplicates]
    jobs_dir = sweep_dir / "jobs"
    launch_rc = None
    if pending:
        launch_rc = _launch(request, pending, plan_dir, jobs_dir, parent.run_id, shared)
    outcomes = _settle(jobs, hashes, skipped, duplicates, _read_outcomes(jobs_dir), launch_rc,
                       jobs_dir)
    parent.record(outcomes)
    try:
        if before_close is not None and any(o.run_id for o in outcomes):
            before_close(uri, parent.run_id)
    finally:
        parent.finish(outcomes)
    return outcomes


def _interrupted(request: SweepRequest, parent: SweepRun, experiment_id: str,
                 stop: SweepInterrupted) -> SweepInterrupted:
    """Record a stopped sweep: children still RUNNING (local launchers) and the parent
    KILLED; the error whose message says so."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # recording the end must not be cut short
    name = signal.Signals(stop.signum).name
    reason = f"the sweep was stopped by {name}"
    on_slurm = uses_slurm(request.launcher or [])
    if not on_slurm:
        parent.kill_children(experiment_id, reason)
    parent.abort("KILLED", reason)
    done = (f"the parent run {parent.run_id} is marked KILLED and its SLURM jobs keep "
            "running (scancel stops them)" if on_slurm else
            f"the parent run {parent.run_id} and every unfinished job's run are marked "
            "KILLED, and the same command resumes those jobs")
    error = SweepInterrupted(stop.signum)
    error.args = (f"Stopped by {name}: {done}.",)
    return error


def check_request(request: SweepRequest) -> None:
    if request.smoke and not request.spec.smoke:
        raise ConfigError(f"{request.spec.path} has no smoke overrides: add a smoke: list "
                          "to shrink it, or run it without SMOKE=1.")
