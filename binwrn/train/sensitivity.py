"""Paper 3's sensitivity pre-training (spec 3.6): the body of `binwrn-sensitivity`.

For each 1-bit layer k, train the net from the same initial weights with only k binary and
every other layer fp32, for trainer.max_epochs epochs (the official code: a rotated order
whose first entry is k, with epochs_per_layer equal to the budget; here `iterative.order=
single`), then measure accuracy on the validation split held out of the training images
(data.val_size, paper 3: 5,000 of CIFAR-10's 50k or the last 5,000 of MNIST's 60k, the same
split its final runs leave out); the test set is never used. The ranking JSON it writes is
what `iterative.order=ascend|descend iterative.ranking=<file>` reads: "ascend" puts the least
sensitive layer (highest validation accuracy) first (binwrn.models.layer_order says why).

The same runs can also be made one tracked run per layer, `binwrn-run iterative.order=single
iterative.layer=<name> data.val_size=5000` (the p3_sensitivity sweep), which
`iterative.ranking=store` reads back.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch import nn

from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.models.layer_order import binarizable_names, ranking_record
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun
from binwrn.train.fit import make_trainer, recompute_bn, validation_scores
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.module import ImageClassifier
from binwrn.train.spec import RunSpec

METRIC = "sensitivity/val_acc"
# A fresh (model, schedule) with the run's initial weights: every layer's run starts there.
Fresh = Callable[[], tuple[nn.Module, object]]


def accuracy_with_one_binary_layer(spec: RunSpec, fresh: Fresh, layer: str,
                                   work_dir: Path) -> float:
    """Validation accuracy after training with only `layer` binary (spec 3.6)."""
    model, schedule = fresh()
    classifier = ImageClassifier(spec.fast_path.apply(model), schedule, spec.optimizer)
    data = DeviceAugmentedData(spec.train, spec.validation, spec.batch.batch_size,
                               spec.augment, spec.batch.eval_batch_size,
                               layout=spec.fast_path.images)
    only_layer = LayerByLayerBinarization([layer], epochs_per_layer=spec.trainer.max_epochs)
    trainer = make_trainer(spec.trainer, [only_layer], work_dir, progress=False)
    trainer.fit(classifier, datamodule=data)
    if spec.bn.after_training:
        recompute_bn(spec, classifier, data, trainer)
    return validation_scores(spec, classifier, trainer)["val/acc"]


def sensitivity(spec: RunSpec, fresh: Fresh, out: Path) -> dict:
    """Train once per 1-bit layer, write the ranking JSON to `out` and log it to MLflow
    (the spec's validation split: binwrn/configuration/sensitivity.py)."""
    layers = binarizable_names(spec.model)
    if not layers:
        raise ConfigError("model.bits=32 has no 1-bit layers to rank: set model.bits=1.")
    t = spec.tracking
    tags = {**provenance_tags(spec.trainer.accelerator), "binwrn.kind": "sensitivity"}
    accuracy: dict[str, float] = {}
    with TrackedRun(t.uri, t.experiment, t.artifact_root, spec.identity.name, tags,
                    spec.identity.params) as run, tempfile.TemporaryDirectory() as work:
        for step, layer in enumerate(layers):
            accuracy[layer] = accuracy_with_one_binary_layer(spec, fresh, layer, Path(work))
            run.log_metrics({METRIC: accuracy[layer]}, step=step)  # step: forward index
        record = ranking_record(accuracy, layers)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2))
        run.log_json(record, "sensitivity/ranking.json")
    return {**record, "run_id": run.run_id}
