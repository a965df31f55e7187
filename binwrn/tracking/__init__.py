"""MLflow tracking: runs, their provenance, and per-epoch metrics. Knows nothing of convs."""

from binwrn.tracking.callback import EpochMetricsToMlflow
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import FAILURE_TAG, TrackedRun
from binwrn.tracking.store import ui_link

__all__ = ["FAILURE_TAG", "EpochMetricsToMlflow", "TrackedRun", "provenance_tags", "ui_link"]
