"""The steps every DDP rank runs alike (and a one-device run): build the module, data,
callbacks and Trainer; fit, recompute BN statistics, test, save final.ckpt.

Rank zero wraps them in its MLflow run (train/run.py); the other ranks run them from what it
broadcasts (train/cluster.py, `follow`), whether binwrn, srun or torchrun started them.
Nothing here imports MLflow, so those ranks start faster.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import RichProgressBar

from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.data.shards import BN_RECOMPUTE, stream_seed
from binwrn.errors import ConfigError
from binwrn.tracking.callback import EpochMetricsToMlflow
from binwrn.tracking.metrics import FINAL, RECOMPUTED
from binwrn.train.bn_stats import recompute_bn_statistics
from binwrn.train.checkpoints import EpochCheckpoints, RandomState
from binwrn.train.cluster import Launched
from binwrn.train.ddp import (
    RankRandomStreams,
    align_streams_for_bn_recompute,
    ddp_trainer_settings,
    share_bn_statistics,
)
from binwrn.train.epoch_sums import EpochSums
from binwrn.train.fast_path import set_tf32
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.module import ImageClassifier
from binwrn.train.multi_crop import evaluate_multi_crop
from binwrn.train.phase_clock import PhaseClock
from binwrn.train.recomputed_test import RecomputedStatisticsTest
from binwrn.train.spec import RunSpec, TrainerArgs

if TYPE_CHECKING:  # imported where used: torchvision costs every CIFAR run seconds at start-up
    from binwrn.data.imagenet_loader import StreamingImageData


# Passed explicitly, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot undo it (Lightning 2.6 takes it;
# an older one without the argument loads a file rank zero has verified that way first).
_WEIGHTS_ONLY = ({"weights_only": True}
                 if "weights_only" in inspect.signature(pl.Trainer.fit).parameters else {})


def recompute_bn(spec: RunSpec, classifier, data, trainer: pl.Trainer) -> None:
    # Lightning moves the module back to the CPU when fit ends; recompute on the device.
    device = trainer.strategy.root_device
    classifier.to(device)
    align_streams_for_bn_recompute(trainer, spec.seed)
    batches = islice(data.augmented_train_batches(device), spec.bn.batches)
    # Seeded: the same statistics after a resume from the checkpoint (bn_stats.py).
    seed = stream_seed(spec.seed, BN_RECOMPUTE, trainer.current_epoch)
    with trainer.strategy.precision_plugin.forward_context():  # same precision as training
        recompute_bn_statistics(classifier.model, batches, seed=seed)
    if trainer.world_size > 1:
        share_bn_statistics(classifier.model)


def validation_scores(spec: RunSpec, classifier, trainer: pl.Trainer) -> dict[str, float]:
    """val/acc, val/loss and val/error_pct on the held-out split (the model as it is now)."""
    held_out = DeviceAugmentedData(spec.train, spec.validation, spec.batch.batch_size,
                                   spec.augment, spec.batch.eval_batch_size,
                                   layout=spec.fast_path.images)
    # The module names its evaluation metrics test/*: here they are the held-out split's.
    (scores,) = trainer.validate(classifier, datamodule=held_out, verbose=False)
    acc = float(scores["test/acc"])
    return {"val/acc": acc, "val/loss": float(scores["test/loss"]),
            "val/error_pct": 100.0 * (1.0 - acc)}


def _multi_crop_test(spec: RunSpec, classifier, data, trainer: pl.Trainer) -> dict:
    """Paper 1's 25-crop ImageNet test (dataset.multi_crop), after the single-crop one."""
    if not spec.multi_crop:
        return {}
    device = trainer.strategy.root_device
    classifier.to(device)
    with trainer.strategy.precision_plugin.forward_context():  # as in training (bf16 or not)
        scores = evaluate_multi_crop(classifier.model, data.multi_crop_dataloader(), device,
                                     data.prepare)
    if trainer.world_size > 1:  # each rank scored its own part of the images: add them up
        scores = scores.summed_over_ranks(device)
    return scores.metrics()


def _datamodule(spec: RunSpec) -> pl.LightningDataModule:
    """Streaming JPEG workers for ImageNet (spec.crops), else the in-memory path, which
    splits each step between DDP processes itself."""
    b, layout = spec.batch, spec.fast_path.images
    if spec.crops is None:
        return DeviceAugmentedData(spec.train, spec.test, b.batch_size, spec.augment,
                                   b.eval_batch_size, layout=layout, step_batch=b.step_batch,
                                   seed=spec.seed)
    from binwrn.data.imagenet_loader import StreamingImageData, worker_count

    # Loader workers per rank: the ranks of one machine share its cores.
    workers = worker_count(spec.loader_workers, ranks_on_node=spec.trainer.devices_per_node)
    return StreamingImageData(spec.train, spec.test, spec.crops, b.batch_size,
                              b.eval_batch_size, workers, layout, step_batch=b.step_batch,
                              seed=spec.seed)


def make_trainer(args: TrainerArgs, callbacks: list, output_dir: Path, progress: bool,
                 launched: Launched | None = None):
    """Lightning's Trainer from `trainer.*`; a value Lightning rejects is the user's to fix.
    DDP: this process is one of the ranks `launched` describes (train/cluster.py)."""
    try:
        if args.tf32 is not None:
            set_tf32(args.tf32)
        # The data module splits the data between DDP processes itself (data/shards.py).
        settings = {**args.settings, "use_distributed_sampler": False}
        if launched is not None:
            settings = ddp_trainer_settings(settings, launched.environment)
        return pl.Trainer(**settings, logger=False,
                          callbacks=callbacks, default_root_dir=output_dir,
                          enable_progress_bar=progress)
    except (MisconfigurationException, TypeError, ValueError) as err:
        raise ConfigError(f"Lightning rejected the trainer.* settings: {err}") from None


@dataclass
class Parts:
    classifier: ImageClassifier
    data: DeviceAugmentedData | StreamingImageData
    trainer: pl.Trainer
    to_mlflow: EpochMetricsToMlflow
    clock: PhaseClock


def build(spec: RunSpec, work_dir: Path, show_progress: bool,
          started_at: float | None = None, launched: Launched | None = None,
          extra_callbacks: tuple = ()) -> Parts:
    """The same module, data, callbacks and Trainer on every rank (`extra_callbacks`: a
    benchmark's timer)."""
    model = spec.fast_path.apply(spec.model)
    classifier = ImageClassifier(model, spec.schedule, spec.optimizer,
                               step_batch=spec.batch.step_batch)
    data = _datamodule(spec)
    # The test after training follows a BN recomputation when bn.recompute_stats: it is then
    # also the last test_recomputed/* point (tracking/metrics.py).
    final_views = (FINAL, RECOMPUTED) if spec.bn.after_training else (FINAL,)
    to_mlflow, clock = EpochMetricsToMlflow(final_views=final_views), PhaseClock(started_at)
    # A cycle ends after `n` epochs when the next (0-based index n) restarts.
    callbacks = [to_mlflow, clock, RandomState(), EpochSums(), RankRandomStreams(spec.seed),
                 EpochCheckpoints(work_dir / "checkpoints", spec.schedule.restarts_at,
                                  spec.checkpoints.keep_cycle_ends), *extra_callbacks]
    if spec.bn.test_epochs:  # first: its scores join the epoch's, BN restored first
        callbacks.insert(0, RecomputedStatisticsTest(
            spec.bn.test_epochs,
            lambda trainer: recompute_bn(spec, classifier, data, trainer),
            data.test_batches, to_mlflow.add_epoch_metrics, spec.bn.after_training,
            timed=clock.timed))
    if spec.iterative.order:  # paper 3: convs turn binary one at a time (spec 3.3)
        callbacks.append(LayerByLayerBinarization(list(spec.iterative.order),
                                                  spec.iterative.epochs_per_layer))
    if show_progress:
        callbacks.append(RichProgressBar())
    trainer = make_trainer(spec.trainer, callbacks, work_dir, show_progress, launched)
    return Parts(classifier, data, trainer, to_mlflow, clock)


def fit_and_test(spec: RunSpec, parts: Parts, checkpoint: Path | None,
                 work_dir: Path) -> tuple[dict, dict, Path]:
    """Fit (or resume), recompute BN statistics, test on the whole test set, save final.ckpt.

    Returns the test scores, the further metrics (25-crop test, the held-out split of
    data.val_size) and the final checkpoint."""
    p = parts
    p.trainer.fit(p.classifier, datamodule=p.data, ckpt_path=checkpoint, **_WEIGHTS_ONLY)
    if spec.bn.after_training:
        with p.clock.timed("bn_recompute"):
            recompute_bn(spec, p.classifier, p.data, p.trainer)
    with p.clock.timed("final_test"):
        (scores,) = p.trainer.test(p.classifier, datamodule=p.data, verbose=False)
        extra = _multi_crop_test(spec, p.classifier, p.data, p.trainer)
        if spec.validation is not None:  # data.val_size: paper 3's held-out split
            extra.update(validation_scores(spec, p.classifier, p.trainer))
    final = work_dir / "checkpoints" / "final.ckpt"
    with p.clock.timed("artifacts"):
        p.trainer.save_checkpoint(final, weights_only=True)
    return scores, extra, final


def follow(spec: RunSpec, launched: Launched) -> None:
    """A rank other than zero: learn the run from rank zero, then train, recompute BN and
    test in lockstep with it, writing nothing."""
    told = launched.share()
    work_dir = Path(told["work_dir"])
    checkpoint = Path(told["checkpoint"]) if told["checkpoint"] else None

    def start():
        if checkpoint is not None and not checkpoint.is_file():
            raise ConfigError(
                f"the run's checkpoint {checkpoint} cannot be read here: the output "
                "folder must be on a file system every node shares (hydra.run.dir).")
        return build(spec, work_dir, show_progress=False, launched=launched)

    parts = launched.run_together(start, "Starting the run")
    print(f"binwrn-run {launched.where()}: MLflow run {told['run_id']}, output folder "
          f"{work_dir} (written by rank 0)", flush=True)
    fit_and_test(spec, parts, checkpoint, work_dir)
