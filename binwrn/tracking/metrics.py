"""The test metrics a run logs, and where readers find its final result (no heavy imports).

Three views of the test set, each under its own prefix, so no metric holds two values at one
step (step = epochs completed):
- `test/*`, every epoch: BN with its running averages, as training left them (what [K]
  reports; momentum `bn.momentum`);
- `test_recomputed/*`, at the epochs `bn.recomputed_test_epochs` names (SGDR cycle ends by
  default, MNIST's 1/6/14): BN statistics recomputed over the training batches first, as
  [M] does at every point of the curves paper 1 reports (spec 1.4), on a copy of the BN
  state, so training goes on unchanged;
- `test_final/*`, once, at the last epoch's step: the saved model, the run's result (its BN
  statistics recomputed when `bn.recompute_stats`, and then also its `test_recomputed/*`
  point at that step).
- `test_best/*`, once, at the last epoch's step: the best `test/acc` over the epochs and the
  epoch it came at (`test_best/epoch`), which paper 3's code logs as its result (spec 3.5);
  `test_best_binary/*` likewise over the epochs in which the most layers were binary (a
  paper-3 run: every layer, from the last of its order on; callback.py says why).
Runs from before `test_final/*` logged their final test as a second `test/*` value at the last
step; `final_value` falls back to their latest `test/*` value, which is that one.
"""

from __future__ import annotations

TEST, RECOMPUTED, FINAL = "test", "test_recomputed", "test_final"
BEST, BEST_BINARY = "test_best", "test_best_binary"
ERROR_OF = {"acc": "error_pct", "top5_acc": "top5_error_pct"}  # paper 1's unit: % error


def with_error_pct(metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` with 100 * (1 - accuracy) beside each test accuracy it holds, any view."""
    for view in (TEST, RECOMPUTED, FINAL):
        for accuracy, error in ERROR_OF.items():
            if f"{view}/{accuracy}" in metrics:
                metrics[f"{view}/{error}"] = 100.0 * (1.0 - metrics[f"{view}/{accuracy}"])
    return metrics


def as_view(metrics: dict[str, float], view: str) -> dict[str, float]:
    """`test/<name>` values renamed `<view>/<name>`."""
    return {f"{view}/{key.split('/', 1)[1]}": value for key, value in metrics.items()
            if key.startswith(f"{TEST}/")}


def best_metrics(view: str, accuracy: float, epoch: int) -> dict[str, float]:
    """`<view>/acc`, `<view>/error_pct` and `<view>/epoch` of a best test accuracy."""
    return {f"{view}/acc": accuracy, f"{view}/{ERROR_OF['acc']}": 100.0 * (1.0 - accuracy),
            f"{view}/epoch": float(epoch)}


def final_value(metrics: dict[str, float], name: str = "error_pct") -> float | None:
    """The run's final `name` (error_pct, acc, top5_error_pct, ...) from its latest metric
    values: `test_final/<name>`, or for a run from before that key its latest `test/<name>`."""
    value = metrics.get(f"{FINAL}/{name}")
    return metrics.get(f"{TEST}/{name}") if value is None else value
