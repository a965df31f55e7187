"""Paper 3's sensitivity pre-training (spec 3.6): the body of `binwrn-sensitivity`.

For each 1-bit layer k, train the net from the same initial weights with only k binary and
every other layer fp32, for trainer.max_epochs epochs (the official code: a rotated order
whose first entry is k, with epochs_per_layer equal to the budget; here `iterative.order=
single`), then measure accuracy on the validation split held out of the training images
(data.val_size, paper 3: 5,000 of CIFAR-10's 50k or the last 5,000 of MNIST's 60k, the same
split its final runs leave out); the test set is never used. The ranking JSON it writes is
what `iterative.order=ascend|descend iterative.ranking=<file>` reads: "ascend" puts the least
sensitive layer (highest validation accuracy) first (binwrn.train.layer_order says why).

The same runs can also be made one tracked run per layer, `binwrn-run iterative.order=single
iterative.layer=<name> data.val_size=5000` (the p3_sensitivity sweep), which
`iterative.ranking=store` reads back.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from binwrn.config import (
    Prepared,
    build_model,
    build_schedule_from,
    curated_params,
    prepare,
    run_name,
    seed_all,
)
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun
from binwrn.train.fit import make_trainer, recompute_bn, uses_ddp, validation_scores
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.layer_order import binarizable_names, ranking_record
from binwrn.train.module import WRNClassifier

METRIC = "sensitivity/val_acc"
PAPER3_VAL_SIZE = 5000  # spec 3.5: 45k/5k CIFAR-10, 55k/5k MNIST


def accuracy_with_one_binary_layer(cfg: DictConfig, prepared: Prepared, layer: str,
                                   work_dir: Path) -> float:
    """Validation accuracy after training with only `layer` binary (spec 3.6)."""
    seed_all(cfg.seed)  # every layer's run starts from the same weights
    model = prepared.fast_path.apply(build_model(cfg))
    classifier = WRNClassifier(model, build_schedule_from(cfg), prepared.optimizer)
    data = DeviceAugmentedData(prepared.train, prepared.validation, cfg.data.batch_size,
                               prepared.augment, cfg.data.eval_batch_size,
                               layout=prepared.fast_path.images)
    only_layer = LayerByLayerBinarization([layer], epochs_per_layer=cfg.trainer.max_epochs)
    trainer = make_trainer(cfg, [only_layer], work_dir, progress=False)
    trainer.fit(classifier, datamodule=data)
    if cfg.bn.recompute_stats:
        recompute_bn(cfg, classifier, data, trainer)
    return validation_scores(cfg, prepared, classifier, trainer)["val/acc"]


def sensitivity(cfg: DictConfig, val_size: int | None, out: Path) -> dict:
    """Train once per 1-bit layer, write the ranking JSON to `out` and log it to MLflow.

    `val_size` (--val-size) overrides data.val_size; with neither, paper 3's 5,000."""
    if uses_ddp(cfg):
        raise ConfigError("binwrn-sensitivity trains its short runs on one device: drop "
                          "trainer=ddp.")
    if cfg.iterative.order != "none":
        raise ConfigError(f"iterative.order={cfg.iterative.order} does not apply: "
                          "binwrn-sensitivity binarizes one layer per run itself.")
    val_size = val_size or cfg.data.get("val_size", 0) or PAPER3_VAL_SIZE
    cfg = OmegaConf.merge(cfg, {"data": {"val_size": val_size}})
    prepared = prepare(cfg)  # holds the validation images out of training
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
            accuracy[layer] = accuracy_with_one_binary_layer(cfg, prepared, layer, Path(work))
            run.log_metrics({METRIC: accuracy[layer]}, step=step)  # step: forward index
        record = ranking_record(accuracy, layers)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2))
        run.log_json(record, "sensitivity/ranking.json")
    return {**record, "run_id": run.run_id}
