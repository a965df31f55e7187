"""Each run's own figure, figures/curves.png on the run: its test error by epoch, drawn from
the run's history in the store when it ends (a resumed run's whole history, not this
attempt's), in the style of the sweep reports' error_vs_epoch.png."""

from __future__ import annotations

from pathlib import Path

from binwrn.report.figures import DPI, error_vs_epoch_figure
from binwrn.report.rows import BITS, Row
from binwrn.report.runs import read_run


def log_curves(client, run_id: str, folder: Path) -> Path:
    """Draw the run's curves into `folder`/curves.png and log it under figures/."""
    result = read_run(client, client.get_run(run_id), labels={})
    fig = error_vs_epoch_figure([Row(((BITS, result.bits),), (result,))], result.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "curves.png"
    fig.savefig(path, dpi=DPI)
    client.log_artifact(run_id, str(path), "figures")
    return path
