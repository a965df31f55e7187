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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from binwrn.checks import check_config
from binwrn.data import Augment, ImageSplit, load_splits
from binwrn.data.arrays import check_batch_size
from binwrn.data.imagenet import FileSplit, list_imagenet
from binwrn.data.validation import holdout_split
from binwrn.errors import BinwrnError, ConfigError
from binwrn.tracking.credentials import move_credentials_to_env
from binwrn.tracking.sensitivity_runs import stored_accuracy
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
    ranking_record,
    resolve_order,
)
from binwrn.train.optimizers import OptimizerSettings
from binwrn.train.schedules import build_schedule

if TYPE_CHECKING:  # imported where used: torchvision costs CIFAR runs seconds at startup
    from binwrn.data.imagenet_transforms import CropSettings

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
    "iterative.order", "iterative.epochs_per_layer", "iterative.ranking", "iterative.layer",
    "model.hidden", "model.init", "optim.name", "optim.decay_scope", "optim.betas",
    "data.val_size",
    "dataset.use_extra",  # SVHN's configs only: absent keys are not logged
    "trainer.tf32", "model.final_bn_affine", "model.skip", "model.init_gain",
    "schedule.per_batch",
)
# Keys that change where things are stored or how fast, not what is trained.
HASH_EXCLUDED = ("tracking", "verbose", "data.root", "data.cache_dir", "data.download",
                 "data.verify_checksums", "data.eval_batch_size", "trainer.accelerator",
                 "trainer.devices", "resume", "checkpoints", "speed", "sweep.name",
                 "sweep.parent_run_id", "sweep.job", "sweep.smoke",
                 "dataset.workers", "dataset.decoder",  # ImageNet loader: speed only
                 "norms",  # the table model.input_relu and model.temperature read: in model.*
                 # extra test points on a copy of the BN state: the training is unchanged
                 "bn.recomputed_test_epochs",
                 "model.label",  # the net's name in run names and folders
                 # read by paper 3's nets as model.input_mean/std (hashed there); the WRN's
                 # input BN normalises instead
                 "dataset.mean", "dataset.std")
# Keys paper 2 added, left out while they hold paper 1's value, so that a paper-1 config keeps
# the hash it had before them: its finished runs are still skipped, its runs still resume.
# Keys paper 3 added; their curated params also show only where they differ from paper 1.
PAPER3_KEYS = {"optim.name": "sgd", "optim.decay_scope": "weights", "data.val_size": 0}
# Keys of the fidelity issue (16): TF32, Appendix B's plain net, two implementation
# ablations. (Its default precision 32-true did change the default hash: `auto` had bf16 on
# GPUs; trainer.precision=auto keeps the hash stored runs carry.)
FIDELITY_KEYS = {"trainer.tf32": False, "model.final_bn_affine": False, "model.skip": True,
                 "model.init_gain": 2.0, "schedule.per_batch": True}
PAPER1_VALUES = {"model.norm": "batchnorm", "model.temperature": None,
                 "dataset.channels": 3,  # added with MNIST's single channel
                 "iterative.layer": None,  # added after the other iterative.* keys
                 **PAPER3_KEYS, **FIDELITY_KEYS}
# Shown as params only where they differ from paper 1: older runs' params stay as they were.
QUIET_PARAMS = {**PAPER3_KEYS, **FIDELITY_KEYS}
# Groups paper 3 added, left out in the same way while their switch holds paper 1's value:
# with iterative.order=none the other iterative.* keys have no effect.
PAPER1_GROUPS = {"iterative": ("order", "none")}


# Params left out where unset: a BN net has no temperature (paper 2's shifted-ReLU nets do).
UNSET_HIDDEN = ("model.temperature",)


def curated_params(cfg: DictConfig) -> dict[str, object]:
    # A paper-1 run (iterative.order=none, SGD, ...) shows the params it showed before paper 3.
    paper1 = OmegaConf.select(cfg, "iterative.order", default="none") == "none"
    keys = [k for k in CURATED_PARAMS if not (paper1 and k.startswith("iterative."))]
    values = {key: OmegaConf.select(cfg, key, default="__absent__") for key in keys}
    return {k: (list(v) if OmegaConf.is_list(v) else v) for k, v in values.items()
            if v != "__absent__" and not (k in QUIET_PARAMS and v == QUIET_PARAMS[k])
            and not (k in UNSET_HIDDEN and v is None)}


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
        # The processes, not the machines they run on, make the net: 2 nodes x 2 devices is
        # 1 x 4. num_nodes stays in the tree as the 1 that runs from before several nodes hash.
        if "num_nodes" in tree["trainer"]:
            tree["trainer"]["num_nodes"] = 1
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


def net_name(model: DictConfig) -> str:
    """wrn20-10, vgg5, resnet20, mlp300-100: the model's label (a config from before labels is
    a WRN), with an MLP's hidden widths."""
    label = model.get("label") or f"wrn{model.depth}-{model.width}"
    hidden = model.get("hidden")
    return label + "-".join(str(h) for h in hidden) if hidden else label


def run_name(cfg: DictConfig) -> str:
    bits = "1bit" if cfg.model.bits == 1 else f"fp{cfg.model.bits}"
    if "width" not in cfg.model:  # paper 3's nets; the WRNs (CIFAR, ImageNet) are named below
        order = OmegaConf.select(cfg, "iterative.order", default="none")
        order = "" if order == "none" else f"-{order if isinstance(order, str) else 'list'}"
        if order == "-single":
            order += f"-{cfg.iterative.layer}"
        return (f"{cfg.dataset.name}-{net_name(cfg.model)}-{bits}-"
                f"{cfg.optim.get('name', 'sgd')}-{cfg.schedule.name}{order}")
    affine = "bn-affine" if cfg.bn.learn_affine else "bn-fixed"
    if cfg.model.get("norm", "batchnorm") == "shifted_relu":
        affine = f"srelu-T{cfg.model.temperature:g}"  # no internal BN to be affine or not
    cut = f"-cutout{cfg.data.cutout}" if cfg.data.cutout else ""
    return (f"{cfg.dataset.name}-{net_name(cfg.model)}-{bits}-"
            f"{cfg.schedule.name}-{affine}{cut}")


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


def build_augment(cfg: DictConfig) -> Augment:
    d = cfg.data
    return Augment(flip=d.flip, pad=d.pad, pad_fill=d.pad_fill, cutout=d.cutout)


def build_crops(cfg: DictConfig) -> CropSettings | None:
    """How a streaming data set (ImageNet) cuts its crops; None for in-memory data sets."""
    ds = cfg.dataset
    if not ds.get("streaming", False):
        return None
    from binwrn.data.imagenet_transforms import CropSettings

    crops = CropSettings(
        size=ds.image_size, train_crop=ds.train_crop, scale_range=tuple(ds.scale_range),
        area_range=tuple(ds.area_range), aspect_range=tuple(ds.aspect_range),
        flip=cfg.data.flip, eval_resize=ds.eval_resize,
        multi_crop_scales=tuple(ds.multi_crop_scales),
        multi_crop_positions=ds.multi_crop_positions, decoder=ds.decoder)
    if ds.multi_crop not in (0, crops.multi_crop_count):
        raise ConfigError(f"dataset.multi_crop={ds.multi_crop} is not allowed: use 0 (single "
                          f"centre crop only) or {crops.multi_crop_count} (5 crops at each of "
                          "the dataset.multi_crop_scales).")
    if ds.workers != "auto" and not (isinstance(ds.workers, int) and ds.workers >= 0):
        raise ConfigError(f"dataset.workers={ds.workers} is not allowed: use auto or a whole "
                          "number >= 0 of loader processes.")
    return crops


def load_data(cfg: DictConfig) -> tuple[ImageSplit | FileSplit, ImageSplit | FileSplit]:
    d = cfg.data
    if cfg.dataset.get("streaming", False):  # ImageNet: listed here, decoded per batch
        return list_imagenet(d.root, cfg.dataset.num_classes, d.train_limit, d.test_limit,
                             extract=d.download)
    train, test = load_splits(
        cfg.dataset.name, d.root, cfg.dataset.num_classes, cfg.dataset.image_size,
        download=d.download, cache_dir=d.cache_dir,
        train_limit=d.train_limit, test_limit=d.test_limit,
        verify_checksums=d.get("verify_checksums", True),  # absent in older runs' configs
        use_extra=cfg.dataset.get("use_extra", False),  # SVHN only
    )
    return train, test


# Images decoded and run at once by eval_batches: 500 ImageNet crops at 224 pixels are 300 MB
# of float32, where a whole 50,000-image val set would be 30 GB.
EVAL_CHUNK = 500


def eval_batches(cfg: DictConfig, test: ImageSplit | FileSplit,
                 size: int = EVAL_CHUNK) -> Iterator[np.ndarray]:
    """float32 NCHW raw 0-255 pixels of a test split as testing feeds them to the model, `size`
    images at a time: in-memory images as they are, ImageNet files as their single centre crops
    (decoded a chunk at a time)."""
    if not isinstance(test, FileSplit):
        images = test.model_inputs()
        yield from (images[i:i + size] for i in range(0, len(images), size))
        return
    from binwrn.data.imagenet_transforms import read_rgb

    crops = build_crops(cfg)
    for start in range(0, len(test), size):
        yield np.stack([crops.centre_crop_of(read_rgb(test.path(i), crops.decoder)).numpy()
                        for i in range(start, min(start + size, len(test)))]).astype(np.float32)


def split_validation(cfg: DictConfig, train: ImageSplit | FileSplit
                     ) -> tuple[ImageSplit | FileSplit, ImageSplit | None]:
    """(the images to train on, the held-out validation split or None): data.val_size."""
    count = cfg.data.get("val_size", 0)  # absent in older runs' configs
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"data.val_size={count} is not allowed: use a whole number >= 0 "
                          "(0: no validation split).")
    if count == 0:
        return train, None
    if isinstance(train, FileSplit):
        raise ConfigError(f"data.val_size={count} holds out images of in-memory data sets only; "
                          f"{cfg.dataset.name} streams its files: leave it at 0.")
    return holdout_split(train, count, cfg.dataset.get("val_split", "balanced"))


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs that a user's input could break, built and checked."""

    model: nn.Module
    schedule: object
    augment: Augment
    train: ImageSplit | FileSplit  # FileSplit: a streaming data set (ImageNet), with `crops`
    test: ImageSplit | FileSplit
    tracking_uri: str
    fast_path: FastPath
    warnings: tuple[str, ...] = ()
    binarization_order: tuple[str, ...] | None = None  # paper 3; None: paper 1, all at once
    crops: CropSettings | None = None
    optimizer: OptimizerSettings = OptimizerSettings()
    validation: ImageSplit | None = None  # data.val_size images held out of `train`
    recomputed_tests: frozenset[int] = frozenset()  # epochs with a test_recomputed/* point


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch before the model's initial weights are drawn."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(cfg: DictConfig) -> Prepared:
    """Build and check config values and data, cheapest first; raises BinwrnError."""
    check_config(cfg)  # what the config alone decides (binwrn-run checked it before torch)
    # Normalised once, here; its password (if any) moves to the environment (credentials.py)
    uri = absolute_uri(move_credentials_to_env(cfg.tracking.uri))
    check_reachable(uri)  # before anything asks the store (MLflow retries for minutes)
    seed_all(cfg.seed)
    model, schedule, augment = build_model(cfg), build_schedule_from(cfg), build_augment(cfg)
    optimizer = optimizer_settings(cfg)
    order, order_warning = binarization_order(cfg, model, uri)
    crops = build_crops(cfg)
    train, test = load_data(cfg)
    train, validation = split_validation(cfg, train)
    check_batch_size(cfg.data.batch_size, len(train))
    check_data_parallel(cfg, len(train), len(test))
    fast_path = FastPath.from_config(cfg.speed, cfg.trainer.accelerator)
    warnings = [schedule.mismatch(cfg.trainer.max_epochs), unused_bn_option(cfg), order_warning]
    return Prepared(model, schedule, augment, train, test, uri, fast_path,
                    tuple(w for w in warnings if w), order, crops, optimizer, validation,
                    recomputed_test_epochs(cfg, schedule))


def recomputed_test_epochs(cfg: DictConfig, schedule) -> frozenset[int]:
    """The epochs (counted from 1) after which `test_recomputed/*` is measured:
    bn.recomputed_test_epochs, cycle_ends meaning the epochs after which SGDR restarts (and
    its last if it ends a cycle); epochs past trainer.max_epochs are left out."""
    value = OmegaConf.select(cfg, "bn.recomputed_test_epochs", default="none")
    last = cfg.trainer.max_epochs
    if value in (None, "none"):
        return frozenset()
    if value == "cycle_ends":
        return frozenset(e for e in range(1, last + 1) if schedule.restarts_at(e))
    epochs = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
    if not isinstance(epochs, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs):
        raise ConfigError(f"bn.recomputed_test_epochs={value} is not allowed: use cycle_ends, "
                          "none, or a list of epochs such as [1, 6, 14].")
    return frozenset(e for e in epochs if e <= last)


def network_key(cfg: DictConfig) -> str:
    """What a sensitivity ranking belongs to (data set, net, binarizer, smoke or not): tagged
    on every run, and what `iterative.ranking=store` looks for."""
    smoke = "-smoke" if OmegaConf.select(cfg, "sweep.smoke", default=False) else ""
    return (f"{cfg.dataset.name}-{net_name(cfg.model)}-scale_{cfg.model.get('scale', 'he')}"
            f"{smoke}")


def binarization_order(cfg: DictConfig, model: nn.Module, uri: str | None = None
                       ) -> tuple[tuple | None, str | None]:
    """Paper 3's layer order (spec 3.3) and a warning when the budget never reaches fully
    binary; (None, None) for paper 1 or a config from before paper 3. `uri` is the tracking
    store `iterative.ranking=store` reads."""
    it = cfg.get("iterative")
    if it is None:
        return None, None
    order = it.order if isinstance(it.order, str) else OmegaConf.to_container(it.order)
    layers = binarizable_names(model)
    ranking = it.ranking
    if order in ("ascend", "descend") and ranking == "store" and layers:
        accuracy = stored_accuracy(uri or absolute_uri(cfg.tracking.uri),
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
