"""Reference runs: the papers' published numbers as MLflow runs of their own experiment, so the
UI's chart and compare views draw them beside a user's runs (the metric keys and params are the
ones binwrn's runs log).

This module knows how a reference is stored, not what the papers say (report/references.py
builds them from report/paper.py). A reference run carries the tag `binwrn.reference` (its
stable key) and never a `binwrn.config_hash`, so sweep skipping and resume, which match runs by
that hash, cannot take one for a trained run; readers (reports, binwrn-export) call
`is_reference` to leave them out or refuse them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from mlflow.entities import Metric, Param, RunStatus, RunTag

from binwrn.tracking.store import artifact_location, ensure_experiment

REFERENCE_EXPERIMENT = "paper references"
REFERENCE_TAG = "binwrn.reference"  # the reference's stable key, e.g. p1-table1/1bit/20-10/...
SOURCE_TAG = "binwrn.reference_source"  # where the numbers are quoted: spec section and source
DIGEST_TAG = "binwrn.reference_digest"  # of params and metrics: a corrected number replaces it
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI
# Metric timestamps are fixed, so two stores hold the same values and the UI's "time" axis
# does not suggest a training date: 15 February 2018, the ICLR 2018 paper's arXiv version.
PUBLISHED_MS = 1_518_652_800_000


@dataclass(frozen=True)
class Reference:
    key: str  # stable across calls: what makes logging idempotent
    name: str  # the run name the UI shows
    source: str  # spec section and the source it quotes
    params: dict[str, str]
    history: dict[str, dict[int, float]]  # metric key -> {step (epoch): value}
    note: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        content = json.dumps([self.name, self.source, self.params, self.note, self.tags,
                              {k: sorted(v.items()) for k, v in self.history.items()}],
                             sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:16]


def is_reference(run) -> bool:
    """Whether an MLflow run is one of the papers' numbers rather than a trained run."""
    return REFERENCE_TAG in run.data.tags


@dataclass(frozen=True)
class Logged:
    experiment_id: str
    added: int
    replaced: int
    kept: int


def _existing(client, experiment_id: str) -> dict[str, list]:
    runs, token = {}, None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:  # a run someone else put in this experiment is left alone
            if is_reference(run):
                runs.setdefault(run.data.tags[REFERENCE_TAG], []).append(run)
        token = page.token
        if not token:
            return runs


def _log_one(client, experiment_id: str, reference: Reference) -> None:
    tags = {REFERENCE_TAG: reference.key, SOURCE_TAG: reference.source,
            DIGEST_TAG: reference.digest, **reference.tags}
    if reference.note:
        tags[NOTE_TAG] = reference.note
    run_id = client.create_run(experiment_id, start_time=PUBLISHED_MS, tags=tags,
                               run_name=reference.name).info.run_id
    metrics = [Metric(key, float(value), PUBLISHED_MS + step, step)
               for key, points in reference.history.items()
               for step, value in sorted(points.items())]
    client.log_batch(run_id, params=[Param(k, v) for k, v in reference.params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED),
                          end_time=PUBLISHED_MS)


def log_references(client, uri: str, artifact_root: str,
                   references: list[Reference]) -> Logged:
    """Log each reference the store's reference experiment lacks; replace one whose numbers
    changed (a correction in report/paper.py); delete those no longer published. A second call
    adds nothing. A deleted reference experiment is restored: this call asks for it."""
    found = client.get_experiment_by_name(REFERENCE_EXPERIMENT)
    if found is not None and found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    experiment_id = ensure_experiment(
        client, REFERENCE_EXPERIMENT,
        artifact_location(uri, artifact_root, REFERENCE_EXPERIMENT))
    existing = _existing(client, experiment_id)
    added = replaced = kept = 0
    for reference in references:
        runs = existing.pop(reference.key, [])
        if len(runs) == 1 and runs[0].data.tags.get(DIGEST_TAG) == reference.digest:
            kept += 1
            continue
        for run in runs:
            client.delete_run(run.info.run_id)
        replaced += bool(runs)
        added += not runs
        _log_one(client, experiment_id, reference)
    for stale in existing.values():  # references report/paper.py no longer holds
        for run in stale:
            client.delete_run(run.info.run_id)
    return Logged(experiment_id, added, replaced, kept)


def references_logged(client) -> bool:
    """Whether this store has (or had: a user may have deleted it) the reference experiment."""
    return client.get_experiment_by_name(REFERENCE_EXPERIMENT) is not None
