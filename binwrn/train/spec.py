"""`RunSpec`: everything one training run needs, as plain values, built and checked.

The configuration package (binwrn/configuration) reads a composed config and builds one; the
code under binwrn/train reads only this, so it can be driven by a hand-built spec (tests,
benchmarks) and never sees a config tree object. The resolved config tree travels along as a plain
dict, for the artifact of the run and for the DDP ranks that rebuild the same spec from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from binwrn.data import Augment, ImageSplit
from binwrn.data.imagenet import FileSplit
from binwrn.train.data_parallel import DDP
from binwrn.train.fast_path import FastPath
from binwrn.train.optimizers import OptimizerSettings

if TYPE_CHECKING:  # imported where used: torchvision costs CIFAR runs seconds at startup
    from binwrn.data.imagenet_transforms import CropSettings


@dataclass(frozen=True, kw_only=True)
class TrainerArgs:
    """`trainer.*` resolved: Lightning's Trainer arguments and what binwrn reads of them."""

    settings: dict  # pl.Trainer keywords: precision resolved, without tf32
    tf32: bool | None = False  # None: as the process has it (a benchmark's own setting)
    devices_per_node: int = 1  # `devices` as a checked count

    @property
    def precision(self) -> str:
        return self.settings.get("precision", "32-true")

    @property
    def accelerator(self) -> str:
        return self.settings.get("accelerator", "cpu")

    @property
    def devices(self) -> int | list[int]:
        """A count, or the device ids of each node."""
        return self.settings.get("devices", 1)

    @property
    def num_nodes(self) -> int:
        return self.settings.get("num_nodes", 1)

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.devices_per_node

    @property
    def ddp(self) -> bool:
        """trainer.strategy=ddp: binwrn (train/local_ranks.py) or the cluster starts the
        ranks."""
        return self.settings.get("strategy") == DDP

    @property
    def sync_batchnorm(self) -> bool:
        return bool(self.settings.get("sync_batchnorm", False))

    @property
    def max_epochs(self) -> int:
        return self.settings["max_epochs"]


@dataclass(frozen=True, kw_only=True)
class BatchRule:
    """How one optimizer step's images are spread (train/data_parallel.py)."""

    rule: str = "global"  # global | per_device
    batch_size: int = 125  # per step (global) or per device (per_device)
    eval_batch_size: int = 1000
    step_batch: int = 125  # images in one optimizer step, over all devices


@dataclass(frozen=True, kw_only=True)
class BnRecompute:
    """Paper 1's BN statistics recomputed after training, and the extra test points."""

    after_training: bool = False  # bn.recompute_stats
    batches: int = 0
    test_epochs: frozenset[int] = frozenset()  # epochs with a test_recomputed/* point


@dataclass(frozen=True, kw_only=True)
class CheckpointPolicy:
    resume: bool = True  # an unfinished run of the same config hash is resumed
    keep_cycle_ends: int = 2


@dataclass(frozen=True, kw_only=True)
class IterativeSchedule:
    """Paper 3's layer-by-layer binarization (spec 3.3); order None: all at once."""

    order: tuple[str, ...] | None = None
    epochs_per_layer: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrackingSettings:
    uri: str  # normalised once (tracking.store.store_uri), its password in the environment
    experiment: str = "binwrn"
    artifact_root: str = "mlartifacts"
    system_metrics_interval: float = 0
    log_checkpoint: bool = True


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """What the run is called and matched by: resume and sweep skipping compare config_hash."""

    name: str
    config_hash: str
    params: dict = field(default_factory=dict)  # the curated MLflow params
    tags: dict = field(default_factory=dict)  # the network's (tracking/sensitivity_runs.py)
    sweep_tags: dict = field(default_factory=dict)  # nests a sweep's job under its parent
    config: dict = field(default_factory=dict)  # the resolved config tree, plain
    config_yaml: str = ""  # the same as YAML: the run's config/resolved.yaml


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything a run needs that a user's input could break, built and checked."""

    model: nn.Module
    schedule: object
    optimizer: OptimizerSettings
    augment: Augment
    train: ImageSplit | FileSplit  # FileSplit: a streaming data set (ImageNet), with `crops`
    test: ImageSplit | FileSplit
    fast_path: FastPath
    trainer: TrainerArgs
    batch: BatchRule
    bn: BnRecompute
    checkpoints: CheckpointPolicy
    iterative: IterativeSchedule
    tracking: TrackingSettings
    identity: RunIdentity
    seed: int = 0
    validation: ImageSplit | None = None  # data.val_size images held out of `train`
    crops: CropSettings | None = None
    loader_workers: int | str = "auto"  # streaming data sets' loader processes per machine
    multi_crop: bool = False  # paper 1's 25-crop ImageNet test after the single-crop one
    warnings: tuple[str, ...] = ()
