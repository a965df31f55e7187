"""`trainer.*` as the Trainer takes it, and the batch rule, read once from the config."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from binwrn.configuration.parallel import (
    batch_rule,
    devices_per_node,
    step_batch,
    world_size,
)
from binwrn.errors import ConfigError
from binwrn.train.fast_path import resolve_precision
from binwrn.train.spec import BatchRule, TrainerArgs


def trainer_args(cfg: DictConfig) -> TrainerArgs:
    """Lightning's Trainer arguments from `trainer.*` (precision=auto resolved for the device;
    tf32 is binwrn's switch, not Lightning's), and the counts the run reads of them."""
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    settings["precision"] = resolve_precision(settings["precision"], cfg.trainer.accelerator)
    tf32 = settings.pop("tf32", False)  # absent in older runs' configs
    if not isinstance(tf32, bool):
        raise ConfigError(f"trainer.tf32={tf32} is not allowed: use true or false.")
    world_size(cfg.trainer)  # refuses a num_nodes that is not a count
    return TrainerArgs(settings=settings, tf32=tf32,
                       devices_per_node=devices_per_node(cfg.trainer))


def batch_settings(cfg: DictConfig) -> BatchRule:
    d = cfg.data
    return BatchRule(rule=batch_rule(cfg), batch_size=d.batch_size,
                     eval_batch_size=d.eval_batch_size, step_batch=step_batch(cfg))
