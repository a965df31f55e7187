"""`prepare`: a composed config in, a checked `RunSpec` (binwrn/train/spec.py) out.

Everything a user can get wrong (values, data, the tracking store) is refused here, cheapest
first, before Lightning and MLflow load (the slow part of a start) and before any run exists.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn

from binwrn.configuration.build import (
    binarization_order,
    build_model,
    build_schedule_from,
    optimizer_settings,
    recomputed_test_epochs,
    seed_all,
    unused_bn_option,
)
from binwrn.configuration.checks import check_config
from binwrn.configuration.data import (
    build_augment,
    build_crops,
    data_source,
    held_out_warning,
    split_validation,
)
from binwrn.configuration.identity import (
    config_hash,
    curated_params,
    net_name,
    network_key,
    run_name,
    sweep_tags,
)
from binwrn.configuration.parallel import check_data_parallel
from binwrn.configuration.trainer import batch_settings, trainer_args
from binwrn.data.arrays import check_batch_size
from binwrn.data.loading import load_data
from binwrn.models.layer_order import binarizable_names
from binwrn.tracking.sensitivity_runs import LAYER_NUMBER_TAG, NET_TAG, NETWORK_TAG
from binwrn.tracking.store import store_uri
from binwrn.train.fast_path import FastPath
from binwrn.train.spec import (
    BnRecompute,
    CheckpointPolicy,
    IterativeSchedule,
    RunIdentity,
    RunSpec,
    TrackingSettings,
)


def tracking_settings(cfg: DictConfig) -> TrackingSettings:
    """`tracking.*`, its URI normalised once, here (tracking/store.py `store_uri`)."""
    t = cfg.tracking
    return TrackingSettings(uri=store_uri(t.uri), experiment=t.experiment,
                            artifact_root=t.artifact_root,
                            system_metrics_interval=t.system_metrics_interval,
                            log_checkpoint=t.log_checkpoint)


def network_tags(cfg: DictConfig, model: nn.Module) -> dict[str, str]:
    """The net, and for a single-layer run its layer's number (paper 3 numbers layers 1..L
    in forward order, spec 3.6): what `iterative.ranking=store` and reports read."""
    tags = {NETWORK_TAG: network_key(cfg), NET_TAG: net_name(cfg.model)}
    if OmegaConf.select(cfg, "iterative.order", default="none") == "single":
        number = binarizable_names(model).index(cfg.iterative.layer) + 1
        tags[LAYER_NUMBER_TAG] = str(number)
    return tags


def run_identity(cfg: DictConfig, model: nn.Module, held_out: str | None = None
                 ) -> RunIdentity:
    """`held_out`: how the validation split was drawn (split_validation), shown as the param
    data.val_split, its rule alone ("balanced" where the official split could not be used)."""
    params = curated_params(cfg)
    if held_out is not None:
        params["data.val_split"] = held_out.split(",")[0]
    return RunIdentity(name=run_name(cfg), config_hash=config_hash(cfg),
                       params=params, tags=network_tags(cfg, model),
                       sweep_tags=sweep_tags(cfg),
                       config=OmegaConf.to_container(cfg, resolve=True),
                       config_yaml=OmegaConf.to_yaml(cfg, resolve=True))


def iterative_schedule(cfg: DictConfig, order: tuple[str, ...] | None) -> IterativeSchedule:
    if order is None:
        return IterativeSchedule()
    it = cfg.iterative
    return IterativeSchedule(order=order, epochs_per_layer=it.epochs_per_layer)


def prepare(cfg: DictConfig, checked: bool = False) -> RunSpec:
    """Build and check config values and data, cheapest first; raises BinwrnError.
    `checked`: the caller has made `check_config` already (binwrn-run, before torch)."""
    if not checked:
        check_config(cfg)  # what the config alone decides
    tracking = tracking_settings(cfg)
    seed_all(cfg.seed)
    model, schedule, augment = build_model(cfg), build_schedule_from(cfg), build_augment(cfg)
    optimizer = optimizer_settings(cfg)
    trainer = trainer_args(cfg)
    order, order_warning = binarization_order(cfg, model, tracking.uri)
    crops = build_crops(cfg)
    train, test = load_data(data_source(cfg))
    train, validation, held_out = split_validation(cfg, train)
    check_batch_size(cfg.data.batch_size, len(train))
    check_data_parallel(cfg, len(train), len(test))
    fast_path = FastPath.from_config(cfg.speed, cfg.trainer.accelerator)
    warnings = [schedule.mismatch(cfg.trainer.max_epochs), unused_bn_option(cfg), order_warning,
                held_out_warning(held_out)]
    return RunSpec(
        model=model, schedule=schedule, optimizer=optimizer, augment=augment, train=train,
        test=test, validation=validation, crops=crops, fast_path=fast_path, trainer=trainer,
        batch=batch_settings(cfg),
        bn=BnRecompute(after_training=bool(cfg.bn.recompute_stats),
                       batches=cfg.bn.recompute_batches,
                       test_epochs=recomputed_test_epochs(cfg, schedule)),
        checkpoints=CheckpointPolicy(resume=bool(cfg.resume),
                                     keep_cycle_ends=cfg.checkpoints.keep_cycle_ends),
        iterative=iterative_schedule(cfg, order), tracking=tracking,
        identity=run_identity(cfg, model, held_out), seed=cfg.seed,
        loader_workers=cfg.dataset.get("workers", "auto"),
        multi_crop=bool(cfg.dataset.get("multi_crop", 0)),
        warnings=tuple(w for w in warnings if w))
