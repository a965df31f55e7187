"""The spec of paper 3's sensitivity pre-training (binwrn-sensitivity, spec 3.6): the config's
run with a held-out validation split, named and parametrised as a sensitivity run, and how to
build the same initial net again for every layer's run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from omegaconf import DictConfig, OmegaConf
from torch import nn

from binwrn.configuration.build import build_model, build_schedule_from, seed_all
from binwrn.configuration.parallel import uses_ddp
from binwrn.configuration.prepare import prepare
from binwrn.errors import ConfigError
from binwrn.train.spec import RunSpec

PAPER3_VAL_SIZE = 5000  # spec 3.5: 45k/5k CIFAR-10, 55k/5k MNIST


def sensitivity_spec(cfg: DictConfig, val_size: int | None
                     ) -> tuple[RunSpec, Callable[[], tuple[nn.Module, object]]]:
    """(the spec, a function giving a fresh (model, schedule) with the spec's initial weights).

    `val_size` (--val-size) overrides data.val_size; with neither, paper 3's 5,000."""
    if uses_ddp(cfg):
        raise ConfigError("binwrn-sensitivity trains its short runs on one device: drop "
                          "trainer=ddp.")
    if cfg.iterative.order != "none":
        raise ConfigError(f"iterative.order={cfg.iterative.order} does not apply: "
                          "binwrn-sensitivity binarizes one layer per run itself.")
    val_size = val_size or cfg.data.get("val_size", 0) or PAPER3_VAL_SIZE
    cfg = OmegaConf.merge(cfg, {"data": {"val_size": val_size}})
    spec = prepare(cfg)  # holds the validation images out of training
    identity = replace(spec.identity, name=f"sensitivity-{spec.identity.name}",
                       params={**spec.identity.params, "sensitivity.val_size": val_size})

    def fresh() -> tuple[nn.Module, object]:
        seed_all(cfg.seed)  # every layer's run starts from the same weights
        return build_model(cfg), build_schedule_from(cfg)

    return replace(spec, identity=identity), fresh
