"""Runs chosen by experiment or MLflow filter, and the store queries the sweep lookup shares.

Outside a sweep nothing says which settings identify a row, so the row keys are the params
that differ between the chosen runs (the seed aside: seeds of one setting share a row).
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from binwrn.errors import ConfigError
from binwrn.report.paper_tables import paper_entry, table2_cell
from binwrn.report.runs import RunResult, read_run
from binwrn.report.selection import Selection
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.references import REFERENCE_EXPERIMENT, is_reference

PARENT_ROLE = ("binwrn.sweep_role", "parent")
# Params that name a Table 1 cell (with the epoch budget, which may be shortened).
TABLE1_KEYS = ("model.bits", "model.depth", "model.width", "dataset.name", "data.cutout",
               "trainer.max_epochs")
# Table 2's rows also differ in the recipe each data set brings (spec 1.5.4).
TABLE2_KEYS = (*TABLE1_KEYS, "bn.learn_affine", "optim.weight_decay", "data.flip", "data.pad",
               "dataset.use_extra")


def experiment_ids(client: MlflowClient, uri: str, name: str | None) -> list[str]:
    """The named experiment's id, or every active experiment's when no name is given."""
    if name is None:
        return [e.experiment_id for e in client.search_experiments()]
    found = client.get_experiment_by_name(name)
    if found is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise ConfigError(f"No experiment named {name} in the tracking store "
                          f"{redact_uri(uri)} (it has: {known}): check --experiment or pass "
                          "--tracking-uri.")
    return [found.experiment_id]


def all_runs(client: MlflowClient, ids: list[str], filter_string: str,
             order_by: list[str]) -> list[Run]:
    """Every page of a search; a filter MLflow cannot parse is the user's to fix."""
    runs: list[Run] = []
    token = None
    try:
        while True:
            page = client.search_runs(ids, filter_string, order_by=order_by, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs
    except MlflowException as err:
        raise ConfigError(f"The filter {filter_string!r} is not one MLflow can use "
                          f"({str(err).splitlines()[0]}): write it as e.g. "
                          "params.`model.bits` = '1' and tags.`binwrn.sweep` = 'name'.") from None


def is_parent(run: Run) -> bool:
    return run.data.tags.get(PARENT_ROLE[0]) == PARENT_ROLE[1]


def differing_params(runs: list[Run]) -> list[str]:
    keys = sorted({k for run in runs for k in run.data.params})
    return [k for k in keys if len({run.data.params.get(k) for run in runs}) > 1]


def looks_like(cell, keys: tuple[str, ...], results: list[RunResult],
               row_keys: tuple[str, ...]) -> bool:
    """Every run has a paper `cell` (paper_entry: Table 1, table2_cell: Table 2), and rows
    differ only in the `keys` that name a cell."""
    return set(row_keys) <= set(keys) and all(cell(r) for r in results)


def _natural(value: object) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def runs_selection(client: MlflowClient, uri: str, experiment: str | None,
                   filter_string: str | None) -> Selection:
    """FINISHED runs of the experiment (or of all experiments) that match the filter; a
    sweep's parent run is bookkeeping, not a result, and the papers' reference runs are what
    the report compares with, not results: both are left out."""
    if experiment == REFERENCE_EXPERIMENT:
        raise ConfigError(f"The experiment '{REFERENCE_EXPERIMENT}' holds the papers' published "
                          "numbers, which a report sets beside your runs, not runs of yours: "
                          "pass the experiment your runs are in (e.g. --experiment binwrn).")
    wanted = "attributes.status = 'FINISHED'"
    if filter_string:
        wanted = f"{filter_string} and {wanted}"
    found = [run for run in all_runs(client, experiment_ids(client, uri, experiment), wanted,
                                     ["attributes.start_time ASC"])
             if not is_parent(run) and not is_reference(run)]
    where = f"experiment {experiment}" if experiment else "any experiment"
    if not found:
        asked = f" matching {filter_string!r}" if filter_string else ""
        raise ConfigError(f"No finished runs{asked} in {where} of the tracking store "
                          f"{redact_uri(uri)}: check --experiment and --filter, or pass "
                          "--tracking-uri.")
    varying = differing_params(found)
    labels_of = {run.info.run_id: {k: run.data.params.get(k) for k in varying} for run in found}
    results = [read_run(client, run, labels_of[run.info.run_id]) for run in found]
    row_keys = tuple(k for k in varying if k != "seed")
    results.sort(key=lambda r: [_natural(r.value(k)) for k in (*row_keys, "seed")])
    kind = ("table1" if looks_like(paper_entry, TABLE1_KEYS, results, row_keys) else
            "table2" if looks_like(table2_cell, TABLE2_KEYS, results, row_keys) else "generic")
    notes = tuple(f"Run {r.run_id} ({r.name}) has no test_final/error_pct and is left out."
                  for r in results if r.final_error is None)
    source = (f"{len(found)} finished run{'' if len(found) == 1 else 's'} of {where}"
              + (f" matching `{filter_string}`" if filter_string else "")
              + f" in `{redact_uri(uri)}`")
    return Selection(
        title=experiment or "filtered runs", kind=kind, row_keys=row_keys,
        runs=tuple(r for r in results if r.final_error is not None), source=source, notes=notes,
    )
