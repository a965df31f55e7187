"""A finished run's stored config (config/resolved.yaml or .hydra/config.yaml), read back with
overrides, and what the exporters need of it as plain values."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from binwrn.configuration.build import model_arguments
from binwrn.configuration.data import build_crops, data_source
from binwrn.errors import ConfigError, DataError
from binwrn.export.run_config import RunConfig


def load_config(path: Path, overrides: list[str]) -> DictConfig:
    """A stored config with `key=value` overrides of keys it has (e.g. data.root=...)."""
    try:
        cfg = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, ValueError, yaml.YAMLError) as err:
        raise DataError(f"Cannot read the config {path} ({type(err).__name__}): give the "
                        "run's config/resolved.yaml or .hydra/config.yaml.") from None
    if not isinstance(cfg, DictConfig) or not all(k in cfg for k in ("model", "dataset")):
        raise ConfigError(f"The config {path} is not a run's config (it has no model and "
                          "dataset sections): give the run's config/resolved.yaml or "
                          ".hydra/config.yaml.")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ConfigError(f"{item} is not an override of the run's config: write "
                              "key=value for a key it has, e.g. data.root=/data/cifar10.")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)  # 200 -> int, null
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"The config {path} does not resolve ({str(err).splitlines()[0]}): "
                          "give the run's config/resolved.yaml with --config.") from None
    return cfg


def run_config(cfg: DictConfig) -> RunConfig:
    """The net, data and layer schedule of `cfg` as binwrn-export and binwrn-eval read them;
    keys absent in older runs' configs keep their defaults."""
    it = cfg.get("iterative") or {}
    order = it.get("order", "none")
    return RunConfig(
        model_target=cfg.model.get("_target_"), model_kwargs=model_arguments(cfg.model),
        data=data_source(cfg), crops=build_crops(cfg), channels=cfg.dataset.get("channels", 3),
        iterative_order=order if isinstance(order, str) else OmegaConf.to_container(order),
        epochs_per_layer=it.get("epochs_per_layer"), max_epochs=cfg.trainer.max_epochs)


def stored_run_config(overrides: list[str]):
    """`path -> RunConfig` for export/source.py: the config at `path` with `overrides`."""
    return lambda path: run_config(load_config(path, overrides))
