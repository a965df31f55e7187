"""One tracked training run, read once from MLflow into plain values the report works on.

The final result is the run's latest `test/error_pct` (and `test/top5_error_pct`): binwrn
logs the test after BN statistics are recomputed at the last epoch's step, later than that
epoch's own evaluation, so MLflow's latest value (largest step, then largest timestamp) is
the final one. Curves
take, at every step, the value logged last, so the last point is the final result too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run

ERROR_METRIC = "test/error_pct"
TOP5_METRIC = "test/top5_error_pct"  # logged where a data set has more than 5 classes
RESTARTS_TAG = "binwrn.restarts"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    name: str
    params: dict[str, str]
    labels: dict[str, object]  # what identifies the run in its sweep (or its differing params)
    final_error: float | None
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> test error (%)
    restarts: tuple[int, ...] = ()  # epochs after which SGDR restarted
    final_top5_error: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of every metric
    tags: dict[str, str] = field(default_factory=dict)

    def value(self, key: str) -> object:
        """A label, else the param of that name, else None."""
        return self.labels[key] if key in self.labels else self.params.get(key)

    def int_param(self, key: str) -> int | None:
        try:
            return int(float(self.params[key]))
        except (KeyError, ValueError):
            return None

    @property
    def bits(self) -> int | None:
        return self.int_param("model.bits")

    @property
    def cutout(self) -> bool:
        return (self.int_param("data.cutout") or 0) > 0

    @property
    def last_epoch(self) -> int:
        return max(self.curve, default=0)


def _restarts(tag: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in tag.split(",") if part.strip())
    except ValueError:  # a tag this report cannot read marks no restarts rather than failing
        return ()


def error_curve(client: MlflowClient, run_id: str) -> dict[int, float]:
    curve: dict[int, float] = {}
    history = client.get_metric_history(run_id, ERROR_METRIC)
    for metric in sorted(history, key=lambda m: (m.step, m.timestamp)):
        if metric.step >= 1:  # step 0 holds no evaluation (sizes are logged there)
            curve[metric.step] = metric.value
    return curve


def read_run(client: MlflowClient, run: Run, labels: dict[str, object]) -> RunResult:
    return RunResult(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        params=dict(run.data.params),
        labels=dict(labels),
        final_error=run.data.metrics.get(ERROR_METRIC),
        curve=error_curve(client, run.info.run_id),
        restarts=_restarts(run.data.tags.get(RESTARTS_TAG, "")),
        final_top5_error=run.data.metrics.get(TOP5_METRIC),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
    )
