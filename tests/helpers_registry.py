"""A FINISHED run as binwrn-run leaves it in MLflow (config and final checkpoint as artifacts,
config hash tag, final test metrics), without training: what binwrn-export --register reads."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers_export import trained_looking_wrn
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from mlflow.entities import Metric
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
FINAL_STEP = 2  # experiment=smoke trains two epochs


def finished_run(folder: Path, store: Path, bits: int = 1) -> str:
    """A trained-looking WRN-8-1 on digits (experiment=smoke) as a finished run in `store`,
    artifacts under `folder`; returns the run id."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["experiment=smoke", "dataset=digits", f"model.bits={bits}"])
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.create_experiment("binwrn", (folder / "mlartifacts").as_uri())
    run_id = client.create_run(experiment, tags={"binwrn.config_hash": "0123abcd"}).info.run_id
    model, _ = trained_looking_wrn(seed=7, bits=bits)
    checkpoint = folder / "final.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               checkpoint)
    client.log_artifact(run_id, str(checkpoint), "checkpoints")
    client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
    # The last epoch's test (running BN averages) and the run's result, as binwrn-run logs them.
    client.log_batch(run_id, metrics=[Metric("test/acc", 0.2, 0, FINAL_STEP),
                                      Metric("test/error_pct", 80.0, 0, FINAL_STEP),
                                      Metric("test_final/acc", 0.25, 0, FINAL_STEP),
                                      Metric("test_final/error_pct", 75.0, 0, FINAL_STEP)])
    client.set_terminated(run_id)
    return run_id
