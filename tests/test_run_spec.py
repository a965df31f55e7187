"""binwrn/train runs from a hand-built RunSpec, with no config composed at all (issue 20):
the spec is the whole of what training reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from binwrn.bench.measure import synthetic_images
from binwrn.data.augment import Augment
from binwrn.models import WideResNet
from binwrn.train import spec as s
from binwrn.train.fast_path import FastPath
from binwrn.train.optimizers import OptimizerSettings
from binwrn.train.schedules import SGDR

TRAINER = {"accelerator": "cpu", "devices": 1, "max_epochs": 2, "precision": "32-true",
           "num_sanity_val_steps": 0, "enable_model_summary": False,
           "enable_checkpointing": False}


def hand_built(tmp: Path) -> s.RunSpec:
    """WRN-8-1, 1-bit, two SGDR epochs of 4 steps on synthetic images, BN recomputed."""
    return s.RunSpec(
        model=WideResNet(depth=8, width=1, num_classes=10, bits=1),
        schedule=SGDR(lr_max=0.1, first_cycle=1, cycle_mult=1), optimizer=OptimizerSettings(),
        augment=Augment(flip=True, pad=4), train=synthetic_images(200),
        test=synthetic_images(60, seed=1), fast_path=FastPath(channels_last=False, compile=False),
        trainer=s.TrainerArgs(settings=TRAINER),
        batch=s.BatchRule(batch_size=50, eval_batch_size=30, step_batch=50),
        bn=s.BnRecompute(after_training=True, batches=2),
        checkpoints=s.CheckpointPolicy(resume=False, keep_cycle_ends=1),
        iterative=s.IterativeSchedule(),
        tracking=s.TrackingSettings(uri=f"sqlite:///{tmp / 'm.db'}",
                                    artifact_root=str(tmp / "a"), log_checkpoint=False),
        identity=s.RunIdentity(name="hand-built", config_hash="0123456789abcdef",
                               params={"model.depth": 8}, config_yaml="model:\n  depth: 8\n"))


@pytest.mark.slow
def test_a_hand_built_spec_trains_tests_and_is_tracked(tmp_path: Path) -> None:
    from binwrn.tracking.store import open_client
    from binwrn.train.run import train

    result = train(hand_built(tmp_path), tmp_path / "out", show_progress=False)
    assert result["test_images"] == 60 and 0.0 <= result["test_final/acc"] <= 1.0
    run = open_client(f"sqlite:///{tmp_path / 'm.db'}").get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "hand-built"
    assert run.data.tags["binwrn.config_hash"] == "0123456789abcdef"
    assert run.data.tags["binwrn.restarts"] == "1"  # SGDR's first cycle of one epoch
    assert run.data.params["model.depth"] == "8"
    kept = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("*.ckpt"))
    # both epochs end a cycle; keep_cycle_ends=1 keeps the newest
    assert kept == ["cycle-end-epoch0002.ckpt", "final.ckpt", "last.ckpt"]
