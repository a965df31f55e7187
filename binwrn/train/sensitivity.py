"""Paper 3's sensitivity pre-training (spec 3.6): the body of `binwrn-sensitivity`.

For each 1-bit layer k, train the net from the same initial weights with only k binary and
every other layer fp32, for trainer.max_epochs epochs (the official code: a rotated order
whose first entry is k, with epochs_per_layer equal to the budget, which is what is done
here), then measure accuracy on a class-balanced validation split held out of the training
images (paper 3: a fixed 45k/5k split of CIFAR-10); the test set is never used. The ranking
JSON it writes is what `iterative.order=ascend|descend iterative.ranking=<file>` reads:
"ascend" puts the least sensitive layer (highest validation accuracy) first
(binwrn.train.layer_order says why).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from binwrn.config import (
    Prepared,
    build_model,
    build_schedule_from,
    curated_params,
    prepare,
    run_name,
    seed_all,
)
from binwrn.data import ImageSplit
from binwrn.data.arrays import check_batch_size
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun
from binwrn.train.fit import make_trainer, recompute_bn, uses_ddp
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.layer_order import binarizable_names, ranking_record
from binwrn.train.module import WRNClassifier

METRIC = "sensitivity/val_acc"


def holdout_split(train: ImageSplit, count: int, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """(the rest, `count` validation images): equal numbers per class, drawn with `seed`."""
    classes = np.unique(train.labels)
    if not 0 < count < len(train) or count % len(classes):
        raise ConfigError(f"--val-size {count} does not split the {len(train)} training "
                          f"images: use a multiple of {len(classes)} (the classes) below "
                          f"{len(train)}.")
    rng = np.random.default_rng(seed)
    per_class = count // len(classes)
    held = np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:per_class]
                           for c in classes])
    if len(held) < count:
        raise ConfigError(f"--val-size {count} needs {per_class} images of every class; "
                          "some class has fewer: lower it.")
    mask = np.zeros(len(train), dtype=bool)
    mask[held] = True
    part = lambda keep: ImageSplit(train.images[keep], train.labels[keep], train.classes)  # noqa: E731
    return part(~mask), part(mask)


def accuracy_with_one_binary_layer(cfg: DictConfig, prepared: Prepared, layer: str,
                                   fit: ImageSplit, val: ImageSplit, work_dir: Path) -> float:
    """Validation accuracy after training with only `layer` binary (spec 3.6)."""
    seed_all(cfg.seed)  # every layer's run starts from the same weights
    model = prepared.fast_path.apply(build_model(cfg))
    names = binarizable_names(model)
    order = [layer, *(n for n in names if n != layer)]
    o, d = cfg.optim, cfg.data
    classifier = WRNClassifier(model, build_schedule_from(cfg), momentum=o.momentum,
                               weight_decay=o.weight_decay, nesterov=o.nesterov,
                               reset_momentum=o.reset_momentum_at_restart)
    data = DeviceAugmentedData(fit, val, d.batch_size, prepared.augment, d.eval_batch_size,
                               layout=prepared.fast_path.images)
    only_first = LayerByLayerBinarization(order, epochs_per_layer=cfg.trainer.max_epochs)
    trainer = make_trainer(cfg, [only_first], work_dir, progress=False)
    trainer.fit(classifier, datamodule=data)
    if cfg.bn.recompute_stats:
        recompute_bn(cfg, classifier, data, trainer)
    (scores,) = trainer.validate(classifier, datamodule=data, verbose=False)
    return float(scores["test/acc"])  # the module's eval metric name; here the held-out split


def sensitivity(cfg: DictConfig, val_size: int, out: Path) -> dict:
    """Train once per 1-bit layer, write the ranking JSON to `out` and log it to MLflow."""
    if uses_ddp(cfg):
        raise ConfigError("binwrn-sensitivity trains its short runs on one device: drop "
                          "trainer=ddp.")
    if cfg.iterative.order != "none":
        raise ConfigError(f"iterative.order={cfg.iterative.order} does not apply: "
                          "binwrn-sensitivity binarizes one layer per run itself.")
    prepared = prepare(cfg)
    fit, val = holdout_split(prepared.train, val_size, cfg.seed)
    check_batch_size(cfg.data.batch_size, len(fit))
    layers = binarizable_names(prepared.model)
    if not layers:
        raise ConfigError("model.bits=32 has no 1-bit layers to rank: set model.bits=1.")
    t = cfg.tracking
    params = {**curated_params(cfg), "sensitivity.val_size": val_size}
    tags = {**provenance_tags(cfg.trainer.accelerator), "binwrn.kind": "sensitivity"}
    accuracy: dict[str, float] = {}
    with TrackedRun(prepared.tracking_uri, t.experiment, t.artifact_root,
                    f"sensitivity-{run_name(cfg)}", tags, params) as run, \
            tempfile.TemporaryDirectory() as work:
        for step, layer in enumerate(layers):
            accuracy[layer] = accuracy_with_one_binary_layer(cfg, prepared, layer, fit, val,
                                                             Path(work))
            run.log_metrics({METRIC: accuracy[layer]}, step=step)  # step: forward index
        record = ranking_record(accuracy, layers)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2))
        run.log_json(record, "sensitivity/ranking.json")
    return {**record, "run_id": run.run_id}
