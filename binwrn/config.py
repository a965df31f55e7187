"""The one place that reads a composed DictConfig and turns it into plain objects.

Models, data and the tracker take plain arguments; this helper builds them from the config,
and derives what tracking needs from it (curated params, a run name, a config hash).
It imports neither Lightning nor MLflow (about 20 s on 2 cores), so `prepare` can refuse
bad input before they load.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from binwrn.data import Augment, ImageSplit, load_splits
from binwrn.data.arrays import check_batch_size
from binwrn.errors import BinwrnError
from binwrn.tracking.store import absolute_uri, check_reachable
from binwrn.train.data_parallel import (
    SPREAD_KEYS,
    check_data_parallel,
    lr_factor,
    trains_like_one_device,
    world_size,
)
from binwrn.train.fast_path import FastPath
from binwrn.train.layer_order import (
    binarizable_names,
    check_epochs_per_layer,
    fully_binary_warning,
    resolve_order,
)
from binwrn.train.schedules import build_schedule

# The flat view shown as MLflow params (filterable in the UI); the full tree is an artifact.
CURATED_PARAMS = (
    "dataset.name", "model.depth", "model.width", "model.bits", "bn.learn_affine",
    "schedule.name", "trainer.max_epochs", "optim.lr", "data.cutout",
    "model.first_last_fp32", "model.scale", "model.grad", "model.input_relu",
    "model.norm", "model.temperature",
    "optim.weight_decay", "optim.momentum", "optim.nesterov", "optim.reset_momentum_at_restart",
    "schedule.lr_min", "schedule.milestones", "bn.recompute_stats", "bn.momentum",
    "data.batch_size", "data.pad", "data.pad_fill", "data.flip", "data.train_limit",
    "data.test_limit", "seed", "deterministic", "trainer.precision",
    "iterative.order", "iterative.epochs_per_layer", "iterative.ranking",
)
# Keys that change where things are stored or how fast, not what is trained.
HASH_EXCLUDED = ("tracking", "data.root", "data.cache_dir", "data.download",
                 "data.verify_checksums", "data.eval_batch_size", "trainer.accelerator",
                 "trainer.devices", "resume", "checkpoints", "speed", "sweep.name",
                 "sweep.parent_run_id", "sweep.job", "sweep.smoke",
                 "norms")  # the table model.input_relu and model.temperature read: in model.*
# Keys paper 2 added, left out while they hold paper 1's value, so that a paper-1 config keeps
# the hash it had before them: its finished runs are still skipped, its runs still resume.
PAPER1_VALUES = {"model.norm": "batchnorm", "model.temperature": None,
                 "dataset.channels": 3}  # added with MNIST's single channel
# Groups paper 3 added, left out in the same way while their switch holds paper 1's value:
# with iterative.order=none the other iterative.* keys have no effect.
PAPER1_GROUPS = {"iterative": ("order", "none")}


def curated_params(cfg: DictConfig) -> dict[str, object]:
    # A paper-1 run (iterative.order=none) shows the params it showed before paper 3.
    paper1 = OmegaConf.select(cfg, "iterative.order", default="none") == "none"
    keys = [k for k in CURATED_PARAMS if not (paper1 and k.startswith("iterative."))]
    values = {key: OmegaConf.select(cfg, key, default="__absent__") for key in keys}
    return {k: (list(v) if OmegaConf.is_list(v) else v) for k, v in values.items()
            if v != "__absent__"}


def _parent(tree: dict, dotted: str) -> dict:
    """The dict holding the last part of a dotted key ({} where a part is missing)."""
    for part in dotted.split(".")[:-1]:
        tree = tree.get(part, {})
    return tree


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved config minus storage/speed keys: equal hash, same experiment."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    for dotted in HASH_EXCLUDED:
        _parent(tree, dotted).pop(dotted.rsplit(".", 1)[-1], None)
    # How the work is spread over devices is not what is trained while DDP trains the
    # one-device net (train/data_parallel.py): its finished runs count on any device count
    # and its unfinished ones resume on any. Otherwise the device count is part of it.
    if trains_like_one_device(cfg):
        for dotted in SPREAD_KEYS:
            _parent(tree, dotted).pop(dotted.rsplit(".", 1)[-1], None)
    else:
        tree["trainer"]["world_size"] = world_size(cfg.trainer)
    for dotted, paper1_value in PAPER1_VALUES.items():
        parent, leaf = _parent(tree, dotted), dotted.rsplit(".", 1)[-1]
        if leaf in parent and parent[leaf] == paper1_value:
            del parent[leaf]
    for group, (switch, paper1_value) in PAPER1_GROUPS.items():
        if tree.get(group, {}).get(switch, paper1_value) == paper1_value:
            tree.pop(group, None)
    model = tree.get("model", {})
    if isinstance(model.get("temperature"), int) and not isinstance(model["temperature"], bool):
        model["temperature"] = float(model["temperature"])  # T=40 (a sweep's) is T=40.0
    if tree.get("sweep", {}).get("stands_for") is None:
        tree.pop("sweep", None)  # a plain run: the same hash as before sweeps existed
    blob = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_name(cfg: DictConfig) -> str:
    bits = "1bit" if cfg.model.bits == 1 else f"fp{cfg.model.bits}"
    affine = "bn-affine" if cfg.bn.learn_affine else "bn-fixed"
    if cfg.model.get("norm", "batchnorm") == "shifted_relu":
        affine = f"srelu-T{cfg.model.temperature:g}"  # no internal BN to be affine or not
    cut = f"-cutout{cfg.data.cutout}" if cfg.data.cutout else ""
    return (f"{cfg.dataset.name}-wrn{cfg.model.depth}-{cfg.model.width}-{bits}-"
            f"{cfg.schedule.name}-{affine}{cut}")


def build_model(cfg: DictConfig) -> nn.Module:
    try:
        return instantiate(cfg.model)
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


def build_augment(cfg: DictConfig) -> Augment:
    d = cfg.data
    return Augment(flip=d.flip, pad=d.pad, pad_fill=d.pad_fill, cutout=d.cutout)


def load_data(cfg: DictConfig) -> tuple[ImageSplit, ImageSplit]:
    d = cfg.data
    train, test = load_splits(
        cfg.dataset.name, d.root, cfg.dataset.num_classes, cfg.dataset.image_size,
        download=d.download, cache_dir=d.cache_dir,
        train_limit=d.train_limit, test_limit=d.test_limit,
        verify_checksums=d.get("verify_checksums", True),  # absent in older runs' configs
    )
    check_batch_size(d.batch_size, len(train))
    return train, test


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs that a user's input could break, built and checked."""

    model: nn.Module
    schedule: object
    augment: Augment
    train: ImageSplit
    test: ImageSplit
    tracking_uri: str
    fast_path: FastPath
    warnings: tuple[str, ...] = ()
    binarization_order: tuple[str, ...] | None = None  # paper 3; None: paper 1, all at once


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch before the model's initial weights are drawn."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(cfg: DictConfig) -> Prepared:
    """Build and check config values and data, cheapest first; raises BinwrnError."""
    uri = absolute_uri(cfg.tracking.uri)
    check_reachable(uri)  # before anything asks the store (MLflow retries for minutes)
    seed_all(cfg.seed)
    model, schedule, augment = build_model(cfg), build_schedule_from(cfg), build_augment(cfg)
    order, order_warning = binarization_order(cfg, model)
    train, test = load_data(cfg)
    check_data_parallel(cfg, len(train), len(test))
    fast_path = FastPath.from_config(cfg.speed, cfg.trainer.accelerator)
    warnings = [schedule.mismatch(cfg.trainer.max_epochs), unused_bn_option(cfg), order_warning]
    return Prepared(model, schedule, augment, train, test, uri, fast_path,
                    tuple(w for w in warnings if w), order)


def binarization_order(cfg: DictConfig, model: nn.Module) -> tuple[tuple | None, str | None]:
    """Paper 3's layer order (spec 3.3) and a warning when the budget never reaches fully
    binary; (None, None) for paper 1 or a config from before paper 3."""
    it = cfg.get("iterative")
    if it is None:
        return None, None
    order = it.order if isinstance(it.order, str) else OmegaConf.to_container(it.order)
    names = resolve_order(order, binarizable_names(model), cfg.seed, it.ranking)
    if names is None:
        return None, None
    epochs = check_epochs_per_layer(it.epochs_per_layer)
    return tuple(names), fully_binary_warning(len(names), epochs, cfg.trainer.max_epochs)


def unused_bn_option(cfg: DictConfig) -> str | None:
    """bn.learn_affine has nothing to act on in paper 2's net: said once, not refused, so
    one sweep can cross bn=... with both norms."""
    if cfg.model.get("norm", "batchnorm") == "shifted_relu" and cfg.bn.learn_affine:
        return ("bn.learn_affine=true has no effect with model.norm=shifted_relu: its only BN "
                "is the input's, which always learns its scale and offset")
    return None
