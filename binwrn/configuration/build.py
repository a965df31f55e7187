"""The model, schedule, optimizer settings and paper 3's layer order a config describes."""

from __future__ import annotations

import random

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from binwrn.configuration.identity import net_name, network_key
from binwrn.configuration.parallel import lr_factor
from binwrn.errors import BinwrnError, ConfigError
from binwrn.models.layer_order import (
    binarizable_names,
    check_epochs_per_layer,
    fully_binary_warning,
    ranking_record,
    resolve_order,
)
from binwrn.tracking.sensitivity_runs import stored_accuracy
from binwrn.tracking.store import store_uri
from binwrn.train.optimizers import OptimizerSettings
from binwrn.train.schedules import build_schedule


def model_arguments(model: DictConfig) -> dict:
    """The network's constructor arguments: model.* resolved, without Hydra's `_target_`
    and `label` (the net's name in run names and folders, not an argument)."""
    arguments = OmegaConf.to_container(model, resolve=True)
    for key in ("_target_", "label"):
        arguments.pop(key, None)
    return arguments


def build_model(cfg: DictConfig) -> nn.Module:
    try:
        return instantiate({"_target_": cfg.model._target_, **model_arguments(cfg.model)})
    except InstantiationException as err:
        if isinstance(err.__cause__, BinwrnError):
            raise err.__cause__ from None
        raise


def build_schedule_from(cfg: DictConfig):
    options = OmegaConf.to_container(cfg.schedule, resolve=True)
    factor = lr_factor(cfg)  # data.batch_rule=per_device: the whole schedule x devices
    if "lr_min" in options:
        options["lr_min"] *= factor
    return build_schedule(options.pop("name"), cfg.optim.lr * factor, **options)


def optimizer_settings(cfg: DictConfig) -> OptimizerSettings:
    """`optim.*` as the training module takes it; keys a config lacks (older runs' configs,
    or Adam's, which has no momentum) keep OptimizerSettings' defaults."""
    options = OmegaConf.to_container(cfg.optim, resolve=True)
    options.pop("lr")  # the schedule's peak
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    try:
        return OptimizerSettings(**options)
    except TypeError as err:
        raise ConfigError(f"optim.* has a key the optimizer does not take ({err}): drop it.") \
            from None


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch before the model's initial weights are drawn."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def recomputed_test_epochs(cfg: DictConfig, schedule) -> frozenset[int]:
    """The epochs (counted from 1) after which `test_recomputed/*` is measured:
    bn.recomputed_test_epochs, cycle_ends meaning the epochs after which SGDR restarts (and
    its last if it ends a cycle); epochs past trainer.max_epochs are left out."""
    value = OmegaConf.select(cfg, "bn.recomputed_test_epochs", default="none")
    last = cfg.trainer.max_epochs
    if value in (None, "none"):
        return frozenset()
    if value == "cycle_ends":
        return frozenset(schedule.restart_epochs(last))
    epochs = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
    if not isinstance(epochs, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs):
        raise ConfigError(f"bn.recomputed_test_epochs={value} is not allowed: use cycle_ends, "
                          "none, or a list of epochs such as [1, 6, 14].")
    return frozenset(e for e in epochs if e <= last)


def binarization_order(cfg: DictConfig, model: nn.Module, uri: str | None = None
                       ) -> tuple[tuple | None, str | None]:
    """Paper 3's layer order (spec 3.3) and a warning when the budget never reaches fully
    binary; (None, None) for paper 1 or a config from before paper 3. `uri` is the tracking
    store `iterative.ranking=store` reads (prepare's, normalised; else tracking.uri's)."""
    it = cfg.get("iterative")
    if it is None:
        return None, None
    order = it.order if isinstance(it.order, str) else OmegaConf.to_container(it.order)
    layers = binarizable_names(model)
    ranking = it.ranking
    if order in ("ascend", "descend") and ranking == "store" and layers:
        accuracy = stored_accuracy(uri or store_uri(cfg.tracking.uri),
                                   cfg.tracking.experiment, network_key(cfg), layers)
        ranking = ranking_record(accuracy, layers)
    names = resolve_order(order, layers, cfg.seed, ranking, it.get("layer"),
                          net_name(cfg.model))
    if names is None:
        return None, None
    epochs = check_epochs_per_layer(it.epochs_per_layer)
    if order == "single":  # never meant to be fully binary
        return tuple(names), None
    return tuple(names), fully_binary_warning(len(names), epochs, cfg.trainer.max_epochs)


def unused_bn_option(cfg: DictConfig) -> str | None:
    """bn.learn_affine has nothing to act on in paper 2's net: said once, not refused, so
    one sweep can cross bn=... with both norms."""
    if cfg.model.get("norm", "batchnorm") == "shifted_relu" and cfg.bn.learn_affine:
        return ("bn.learn_affine=true has no effect with model.norm=shifted_relu: its only BN "
                "is the input's, which always learns its scale and offset")
    return None
