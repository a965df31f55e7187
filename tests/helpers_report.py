"""Real MLflow runs shaped as the sweep driver and binwrn-run record them, for report tests.

A child run logs, per epoch e (step e), the running-statistics test error
`curve_value(final, e)`; at the SGDR cycle ends the test with BN statistics recomputed,
`recomputed_value(final, e)`; and at the last step the final test, `final`, as
test_final/error_pct (and test_recomputed/error_pct). The three differ everywhere, so a report
that reads the wrong one fails. `legacy=True` logs a run as binwrn did before test_final/*
and test_recomputed/*: the final test as a second, later test/error_pct at the last step.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

EPOCHS = 14
T0 = 1_700_000_000_000
ABLATION_SPEC = """\
name: p1_fig6_ablation
grid:
  model.bits: [32, 1]
  schedule: [sgdr, step]
  bn: [learned, paper]
report:
  kind: ablation
  rows: [model.bits, schedule, bn]
"""
# (bits, schedule, bn) -> final test errors of seeds 0, 1, ...
ABLATION_ERRORS = {
    (32, "sgdr", "learned"): [24.0], (32, "sgdr", "paper"): [21.0],
    (32, "step", "learned"): [24.5, 25.5], (32, "step", "paper"): [21.5],
    (1, "sgdr", "learned"): [27.0], (1, "sgdr", "paper"): [23.0, 24.0],
    (1, "step", "learned"): [29.0], (1, "step", "paper"): [26.0],
}
FAILED_REASON = "Diverged: the loss became nan at epoch 3"


def curve_value(final: float, epoch: int) -> float:
    """The per-epoch test error logged at `epoch` (above the final one, falling)."""
    return final + 0.7 + 2.0 * (EPOCHS - epoch)


def recomputed_value(final: float, epoch: int) -> float:
    """The test error with BN statistics recomputed at `epoch` (the final one at the end)."""
    return final + 1.5 * (EPOCHS - epoch)


def paper_params(**changes: object) -> dict[str, str]:
    """binwrn-run's curated params of the Fig. 6 setting (C100 20-4, no cutout)."""
    params = {"dataset.name": "cifar100", "model.depth": 20, "model.width": 4, "model.bits": 1,
              "bn.learn_affine": False, "schedule.name": "sgdr", "trainer.max_epochs": EPOCHS,
              "data.cutout": 0, "seed": 0, "model.grad": "pass_through",
              "model.first_last_fp32": False, "schedule.lr_min": 1e-05,
              "optim.reset_momentum_at_restart": True, "bn.recompute_stats": True}
    params.update(changes)
    return {k: str(v) for k, v in params.items()}


def new_experiment(client: MlflowClient, name: str, root: Path) -> str:
    return client.create_experiment(name, artifact_location=(root / name).as_uri())


def log_child(client: MlflowClient, experiment_id: str, params: dict[str, str], final: float,
              tags: dict[str, str] | None = None, legacy: bool = False) -> str:
    restarts = "2,6" if params["schedule.name"] == "sgdr" else ""
    run_id = client.create_run(experiment_id, run_name=f"run-{params['model.bits']}",
                               tags={"binwrn.restarts": restarts, **(tags or {})}).info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    metrics = [Metric("size/packed_bytes", 1234.0, T0, 0)]
    for epoch in range(1, EPOCHS + 1):
        error = curve_value(final, epoch)
        for key, value in (("test/error_pct", error), ("test/acc", 1 - error / 100),
                           ("test/loss", error / 10), ("train/loss", error / 12),
                           ("train/acc", 1 - error / 120), ("lr", 0.1 / epoch)):
            metrics.append(Metric(key, value, T0 + 1000 * epoch, epoch))
    later = T0 + 1000 * (EPOCHS + 1)
    if legacy:
        metrics += [Metric("test/error_pct", final, later, EPOCHS),
                    Metric("test/acc", 1 - final / 100, later, EPOCHS)]
    else:
        ends = [int(e) for e in restarts.split(",") if e] + [EPOCHS]
        for epoch in ends:
            error = recomputed_value(final, epoch)
            metrics += [Metric("test_recomputed/error_pct", error, T0 + 1000 * epoch, epoch),
                        Metric("test_recomputed/acc", 1 - error / 100, T0 + 1000 * epoch, epoch)]
        metrics += [Metric("test_final/error_pct", final, later, EPOCHS),
                    Metric("test_final/acc", 1 - final / 100, later, EPOCHS)]
    client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def log_sweep(client: MlflowClient, experiment_id: str, name: str, spec: str,
              children: list[tuple[dict, dict[str, str], float | None, str | None]]) -> str:
    """A parent run and its jobs: (labels, params, final error, failure reason) each; a final
    of None with no reason is a job skipped onto the earlier run id in params['run_id']."""
    parent = client.create_run(experiment_id, run_name=name, tags={
        "binwrn.sweep_role": "parent", "binwrn.sweep": name, "binwrn.smoke": "true"})
    parent_id = parent.info.run_id
    jobs = []
    for i, (labels, params, final, reason) in enumerate(children):
        job = f"job_{i:03d}"
        if reason is not None:
            entry = {"run_id": None, "status": "failed", "reason": reason}
        elif final is None:
            entry = {"run_id": params["run_id"], "status": "skipped",
                     "reason": "an identical config had finished"}
        else:
            tags = {"binwrn.sweep": name, "binwrn.sweep_job": job,
                    "mlflow.parentRunId": parent_id, "binwrn.config_hash": f"hash{i}"}
            entry = {"run_id": log_child(client, experiment_id, params, final, tags),
                     "status": "finished", "reason": None}
        jobs.append({"job": job, "labels": labels,
                     "overrides": [f"{k}={v}" for k, v in labels.items()],
                     "config_hash": f"hash{i}", **entry})
    client.log_text(parent_id, spec, "sweep/spec.yaml")
    client.log_text(parent_id, json.dumps(jobs, indent=1), "sweep/jobs.json")
    client.set_terminated(parent_id, "FINISHED")
    return parent_id


def ablation_sweep(client: MlflowClient, experiment_id: str) -> str:
    """Fig. 6's 8 runs, a second seed for two rows (one of them skipped onto a run of an
    earlier sweep), and one failed job; returns the parent run id."""
    children = []
    for (bits, schedule, bn), finals in ABLATION_ERRORS.items():
        for seed, final in enumerate(finals):
            labels = {"model.bits": bits, "schedule": schedule, "bn": bn, "seed": seed}
            params = paper_params(**{"model.bits": bits, "schedule.name": schedule,
                                     "bn.learn_affine": bn == "learned", "seed": seed})
            if (bits, seed) == (1, 1):  # finished in an earlier sweep: this one skips it
                earlier = log_child(client, experiment_id, params, final,
                                    {"binwrn.sweep": "older_sweep"})
                children.append((labels, {"run_id": earlier}, None, None))
            else:
                children.append((labels, params, final, None))
    failed = {"model.bits": 1, "schedule": "step", "bn": "paper", "seed": 1}
    children.append((failed, {}, None, FAILED_REASON))
    return log_sweep(client, experiment_id, "p1_fig6_ablation", ABLATION_SPEC, children)
