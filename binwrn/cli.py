"""Console entry points, nothing else."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from binwrn.errors import BinwrnError, Diverged, Interrupted
from binwrn.terminal import show_config, show_error, show_result


def _conf_dir() -> str:
    """conf/ at the top of a checkout, or the copy packed into an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise RuntimeError("binwrn's conf/ folder is missing from this installation.")


_failed_jobs: list[str] = []


def _quiet_libraries() -> None:
    """Lightning logs through its own handler and Hydra's: keep one copy, drop the ads."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=".*treespec.*")


@hydra.main(version_base="1.3", config_path=_conf_dir(), config_name="config")
def _run_job(cfg: DictConfig) -> float | None:
    from binwrn.config import prepare

    hydra_cfg = HydraConfig.get()
    show_config(OmegaConf.to_yaml(cfg, resolve=True))
    try:
        prepared = prepare(cfg)  # bad values and data are refused before the slow imports
        from binwrn.train.run import train  # Lightning + MLflow: ~20 s on 2 cores

        _quiet_libraries()
        result = train(cfg, prepared, Path(hydra_cfg.runtime.output_dir))
    except (BinwrnError, Diverged, Interrupted) as err:
        show_error(str(err))
        if hydra_cfg.mode.name != "MULTIRUN":
            sys.exit(2)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {err}")
        return None
    show_result(result)
    return result["test/error_pct"]


def run() -> None:
    """`binwrn-run [overrides]`: train and track one config, or a Hydra `-m` sweep."""
    _run_job()
    if _failed_jobs:
        show_error(f"{len(_failed_jobs)} job(s) failed: " + "; ".join(_failed_jobs))
        sys.exit(1)
