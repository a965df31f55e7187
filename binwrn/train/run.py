"""Train one configuration end to end and record it in MLflow (the body of `binwrn-run`).

Order matters for failures: everything a user can get wrong (config values, data) is built
and checked before the MLflow run exists, so bad input never leaves a half run; after that,
any error marks the run FAILED with its reason.
"""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf

from binwrn.config import (
    Prepared,
    config_hash,
    curated_params,
    net_name,
    network_key,
    run_name,
)
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.data.imagenet_loader import StreamingImageData, worker_count
from binwrn.errors import ConfigError
from binwrn.models import size_summary
from binwrn.tracking.callback import EpochMetricsToMlflow, with_error_pct
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun, find_resumable_run
from binwrn.tracking.sensitivity_runs import LAYER_NUMBER_TAG, NET_TAG, NETWORK_TAG
from binwrn.tracking.store import ui_link
from binwrn.train.bn_stats import recompute_bn_statistics
from binwrn.train.checkpoints import (
    EpochCheckpoints,
    OutputLock,
    RandomState,
    resumable_checkpoint,
)
from binwrn.train.fast_path import resolve_precision
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.layer_order import binarizable_names
from binwrn.train.module import WRNClassifier
from binwrn.train.multi_crop import evaluate_multi_crop
from binwrn.train.startup import FirstStepClock


def _log_config(run: TrackedRun, cfg: DictConfig, output_dir: Path) -> None:
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
    run.log_folder(output_dir / ".hydra", "hydra")  # config.yaml, hydra.yaml, overrides.yaml


def _recompute_bn(cfg: DictConfig, classifier, data, trainer: pl.Trainer) -> None:
    # Lightning moves the module back to the CPU when fit ends; recompute on the device.
    device = trainer.strategy.root_device
    classifier.to(device)
    batches = islice(data.augmented_train_batches(device), cfg.bn.recompute_batches)
    with trainer.strategy.precision_plugin.forward_context():  # same precision as training
        recompute_bn_statistics(classifier.model, batches)


def validation_scores(cfg: DictConfig, prepared: Prepared, classifier, trainer: pl.Trainer
                      ) -> dict[str, float]:
    """val/acc, val/loss and val/error_pct on the held-out split (the model as it is now)."""
    held_out = DeviceAugmentedData(prepared.train, prepared.validation, cfg.data.batch_size,
                                   prepared.augment, cfg.data.eval_batch_size,
                                   layout=prepared.fast_path.images)
    # The module names its evaluation metrics test/*: here they are the held-out split's.
    (scores,) = trainer.validate(classifier, datamodule=held_out, verbose=False)
    acc = float(scores["test/acc"])
    return {"val/acc": acc, "val/loss": float(scores["test/loss"]),
            "val/error_pct": 100.0 * (1.0 - acc)}


def _datamodule(cfg: DictConfig, prepared: Prepared) -> pl.LightningDataModule:
    """Streaming JPEG workers for ImageNet (prepared.crops), else the in-memory path."""
    d, layout = cfg.data, prepared.fast_path.images
    if prepared.crops is None:
        return DeviceAugmentedData(prepared.train, prepared.test, d.batch_size, prepared.augment,
                                   d.eval_batch_size, layout=layout)
    return StreamingImageData(prepared.train, prepared.test, prepared.crops, d.batch_size,
                              d.eval_batch_size, worker_count(cfg.dataset.workers), layout)


def _multi_crop_test(cfg: DictConfig, classifier, data, trainer: pl.Trainer) -> dict:
    """Paper 1's 25-crop ImageNet test (dataset.multi_crop), after the single-crop one."""
    if not cfg.dataset.get("multi_crop", 0):
        return {}
    device = trainer.strategy.root_device
    classifier.to(device)
    with trainer.strategy.precision_plugin.forward_context():  # as in training (bf16 or not)
        scores = evaluate_multi_crop(classifier.model, data.multi_crop_dataloader(), device,
                                     data.prepare)
    return scores.metrics()


def _make_trainer(cfg: DictConfig, callbacks: list, output_dir: Path, progress: bool):
    """Lightning's Trainer from `trainer.*`; a value Lightning rejects is the user's to fix."""
    try:
        settings = OmegaConf.to_container(cfg.trainer, resolve=True)
        settings["precision"] = resolve_precision(settings["precision"], cfg.trainer.accelerator)
        return pl.Trainer(**settings, logger=False,
                          callbacks=callbacks, default_root_dir=output_dir,
                          enable_progress_bar=progress)
    except (MisconfigurationException, TypeError, ValueError) as err:
        raise ConfigError(f"Lightning rejected the trainer.* settings: {err}") from None


def _sweep_tags(cfg: DictConfig) -> dict[str, str]:
    """Tags that nest a sweep's job under the sweep's parent run in the MLflow UI."""
    s = cfg.sweep
    if not s.parent_run_id:
        return {}
    return {"mlflow.parentRunId": s.parent_run_id, "binwrn.sweep": s.name,
            "binwrn.sweep_job": s.job, "binwrn.smoke": str(bool(s.smoke)).lower()}


def _network_tags(cfg: DictConfig, prepared: Prepared) -> dict[str, str]:
    """The net, and for a single-layer run its layer's number (paper 3 numbers layers 1..L
    in forward order, spec 3.6): what `iterative.ranking=store` and reports read."""
    tags = {NETWORK_TAG: network_key(cfg), NET_TAG: net_name(cfg.model)}
    if OmegaConf.select(cfg, "iterative.order", default="none") == "single":
        number = binarizable_names(prepared.model).index(cfg.iterative.layer) + 1
        tags[LAYER_NUMBER_TAG] = str(number)
    return tags


def _resume_point(cfg: DictConfig, uri: str, digest: str) -> tuple[str | None, Path | None]:
    """The unfinished run of this exact config and its last checkpoint, when `resume` is on."""
    if not cfg.resume:
        return None, None
    found = find_resumable_run(uri, cfg.tracking.experiment, digest)
    checkpoint = resumable_checkpoint(found[1]) if found else None
    return (found[0], checkpoint) if checkpoint else (None, None)


def train(cfg: DictConfig, prepared: Prepared, output_dir: Path, show_progress: bool = True):
    """Fit (or resume), recompute BN statistics, test on the whole test set."""
    started = time.perf_counter()
    model = prepared.fast_path.apply(prepared.model)
    classifier = WRNClassifier(model, prepared.schedule, prepared.optimizer)
    data = _datamodule(cfg, prepared)
    sizes = size_summary(model)
    digest = config_hash(cfg)
    resume_id, checkpoint = _resume_point(cfg, prepared.tracking_uri, digest)
    # A resumed run keeps writing checkpoints where it started; this invocation's own Hydra
    # folder still gets its log and config.
    work_dir = checkpoint.parent.parent if checkpoint else output_dir
    to_mlflow = EpochMetricsToMlflow()
    # A cycle ends after `n` epochs when the next (0-based index n) restarts.
    clock = FirstStepClock()
    callbacks = [to_mlflow, clock, RandomState(),
                 EpochCheckpoints(work_dir / "checkpoints", prepared.schedule.restarts_at,
                                  cfg.checkpoints.keep_cycle_ends)]
    if prepared.binarization_order:  # paper 3: convs turn binary one at a time (spec 3.3)
        callbacks.append(LayerByLayerBinarization(list(prepared.binarization_order),
                                                  cfg.iterative.epochs_per_layer))
    if show_progress:
        callbacks.append(RichProgressBar())
    trainer = _make_trainer(cfg, callbacks, work_dir, show_progress)  # before the run exists
    tags = {**provenance_tags(cfg.trainer.accelerator), "binwrn.config_hash": digest,
            **_network_tags(cfg, prepared),
            "binwrn.output_dir": str(work_dir), **_sweep_tags(cfg),
            "binwrn.restarts": ",".join(str(e) for e in range(1, cfg.trainer.max_epochs)
                                        if prepared.schedule.restarts_at(e))}
    t = cfg.tracking
    with OutputLock(work_dir), TrackedRun(
        prepared.tracking_uri, t.experiment, t.artifact_root, run_name(cfg), tags,
        curated_params(cfg), t.system_metrics_interval, resume_run_id=resume_id,
    ) as run:
        to_mlflow.run = run
        if run.resumed:
            run.client.set_tag(run.run_id, "binwrn.resumed_by", str(output_dir))
            for key, value in _sweep_tags(cfg).items():  # it nests under the sweep resuming it
                run.client.set_tag(run.run_id, key, value)
        else:
            _log_config(run, cfg, output_dir)
            run.log_metrics(sizes.metrics(), step=0)
            run.log_json(sizes.as_dict(), "model_summary.json")
            run.log_text(sizes.as_markdown(), "model_summary.md")
            if prepared.binarization_order:  # the resolved order (random, ranked or given)
                run.log_json({"order": list(prepared.binarization_order),
                              "layers": binarizable_names(prepared.model),  # forward order
                              "epochs_per_layer": cfg.iterative.epochs_per_layer},
                             "iterative/order.json")
        trainer.fit(classifier, datamodule=data, ckpt_path=checkpoint)
        if cfg.bn.recompute_stats:
            _recompute_bn(cfg, classifier, data, trainer)
        (scores,) = trainer.test(classifier, datamodule=data, verbose=False)
        multi_crop = _multi_crop_test(cfg, classifier, data, trainer)
        validation = {}
        if prepared.validation is not None:  # data.val_size: paper 3's held-out split
            validation = validation_scores(cfg, prepared, classifier, trainer)
        if multi_crop or validation:
            run.log_metrics({**multi_crop, **validation}, step=trainer.current_epoch)
        final = work_dir / "checkpoints" / "final.ckpt"
        trainer.save_checkpoint(final, weights_only=True)
        if t.log_checkpoint:
            run.log_artifact(final, "checkpoints")
        wall = time.perf_counter() - started
        run.log_metrics({"time/wall_s": wall, **clock.metrics()}, step=trainer.current_epoch)
    return {
        **sizes.metrics(), **with_error_pct(dict(scores)), "test_images": len(data.test_set),
        "run_name": run.run_name, "run_id": run.run_id, "tracking_uri": run.uri,
        "output_dir": str(work_dir), "wall_s": wall, "resumed": run.resumed,
        "ui_link": ui_link(experiment_id=run.experiment_id), **multi_crop, **validation,
    }
