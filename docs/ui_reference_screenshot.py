"""The MLflow UI's chart view with the papers' reference runs beside a sweep's runs, taken by
headless Chromium (docs/ui.md, docs/references.md): the experiments `binwrn` and
`paper references` compared, runs sorted by name so that the Keras and MATLAB curves and the
sweep's runs are the first ten, which the chart view draws.

    uv run python docs/ui_reference_screenshot.py STORE URL OUT
    # e.g. uv run python docs/ui_reference_screenshot.py /tmp/ui/mlflow.db \
    #      http://127.0.0.1:5000 docs/ui
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from mlflow import MlflowClient
from ui_screenshots import close_assistant, main, new_tab  # beside this file

SHOT = "reference-charts.png"


def compare_link(url: str, experiment_ids: list[str]) -> str:
    """The UI's own route for comparing experiments, in its chart view, runs sorted by name
    ("Keras curve: ...", "MATLAB curve: ..." and the sweep's lower-case run names come before
    "paper 1 Table ...")."""
    experiments = quote(json.dumps(sorted(experiment_ids)), safe="")
    return (f"{url}/#/compare-experiments/s?experiments={experiments}"
            "&compareRunsMode=CHART&orderByKey=attributes.run_name&orderByAsc=true")


async def take(port: int, url: str, out: Path, store: Path) -> None:
    client = MlflowClient(f"sqlite:///{store.resolve()}")
    ids = [client.get_experiment_by_name(name).experiment_id
           for name in ("binwrn", "paper references")]
    async with new_tab(port) as tab:
        await tab.open(compare_link(url, ids))
        await close_assistant(tab)
        await tab.click("sweep")  # the sweep parents' empty section, folded away
        await tab.shot(out / SHOT)


if __name__ == "__main__":
    main(take)
