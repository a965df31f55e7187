"""One tracked training run, read once from MLflow into plain values the report works on.

The final result is the run's `test_final/error_pct` (and `test_final/top5_error_pct`), the
saved model's test; runs from before that key hold it as their latest `test/error_pct`
(tracking/metrics.py). `curve` is the per-epoch test with BN's running averages (`test/*`,
every epoch, like for like between runs); `recomputed_curve` the points measured with BN
statistics recomputed (`test_recomputed/*`: SGDR cycle ends, the last one the final test),
which are what paper 1's curves are (spec 1.4, 1.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Run

from binwrn.tracking.metrics import RECOMPUTED, final_value

ERROR_METRIC = "test/error_pct"
RECOMPUTED_METRIC = f"{RECOMPUTED}/error_pct"
RESTARTS_TAG = "binwrn.restarts"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    name: str
    params: dict[str, str]
    labels: dict[str, object]  # what identifies the run in its sweep (or its differing params)
    final_error: float | None
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> test error (%), running BN
    restarts: tuple[int, ...] = ()  # epochs after which SGDR restarted
    final_top5_error: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of every metric
    tags: dict[str, str] = field(default_factory=dict)
    recomputed_curve: dict[int, float] = field(default_factory=dict)  # BN recomputed first

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
        return tuple(int(part) for part in tag.split(",")
                     if part.strip() and part.strip() != "...")  # train/run.py restarts_tag
    except ValueError:  # a tag this report cannot read marks no restarts rather than failing
        return ()


def error_curve(client: MlflowClient, run_id: str, metric: str = ERROR_METRIC
                ) -> dict[int, float]:
    """Epoch -> value of `metric`; where a step holds two values (the final test of a run
    from before test_final/*), the one logged last."""
    curve: dict[int, float] = {}
    history = client.get_metric_history(run_id, metric)
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
        final_error=final_value(run.data.metrics),
        curve=error_curve(client, run.info.run_id),
        restarts=_restarts(run.data.tags.get(RESTARTS_TAG, "")),
        final_top5_error=final_value(run.data.metrics, "top5_error_pct"),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        recomputed_curve=error_curve(client, run.info.run_id, RECOMPUTED_METRIC),
    )
