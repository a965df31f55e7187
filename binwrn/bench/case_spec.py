"""The RunSpec of a benchmark case: what binwrn-run would build from the config for the case's
net (model, schedule, optimizer, augmentation, Trainer arguments from conf/trainer), on
synthetic CIFAR-shaped images instead of a data set, with nothing tracked."""

from __future__ import annotations

from dataclasses import replace

import torch

from binwrn.bench.measure import Case, synthetic_images
from binwrn.configuration.build import (
    build_model,
    build_schedule_from,
    optimizer_settings,
    seed_all,
)
from binwrn.configuration.compose import compose
from binwrn.configuration.data import build_augment
from binwrn.configuration.trainer import batch_settings, trainer_args
from binwrn.train import spec as run
from binwrn.train.fast_path import FastPath


def case_spec(case: Case, device: torch.device, precision: str = "auto",
              fast: FastPath | None = None, tf32: bool | None = None) -> run.RunSpec:
    """One epoch of `warmup + steps` steps of `case`, seeded as binwrn-run seeds (0). `fast`:
    the fast path (default: speed.* resolved for the device); `tf32`: None leaves the
    process's TF32 settings as they are (trainer.tf32 sets them in a run)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    cfg = compose([f"model.depth={case.depth}", f"model.width={case.width}",
                   f"model.bits={case.bits}", f"data.batch_size={case.batch_size}",
                   "trainer.max_epochs=1", f"trainer.accelerator={accelerator}",
                   f"trainer.precision={precision}"])
    seed_all(cfg.seed)
    model = build_model(cfg)
    images = case.batch_size * (case.warmup + case.steps)
    return run.RunSpec(
        model=model, schedule=build_schedule_from(cfg), optimizer=optimizer_settings(cfg),
        augment=build_augment(cfg), train=synthetic_images(images),
        test=synthetic_images(case.batch_size),
        fast_path=fast or FastPath.from_config(cfg.speed, accelerator),
        trainer=replace(trainer_args(cfg), tf32=tf32),
        batch=batch_settings(cfg), bn=run.BnRecompute(),
        checkpoints=run.CheckpointPolicy(resume=False), iterative=run.IterativeSchedule(),
        tracking=run.TrackingSettings(uri=""),  # nothing is tracked
        identity=run.RunIdentity(name=f"bench-{case.depth}-{case.width}-{case.bits}",
                                 config_hash=""),
        seed=cfg.seed)
