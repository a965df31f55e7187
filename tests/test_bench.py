"""`make bench` times the path binwrn-run trains with (issue 20): the case's RunSpec built from
the config, `fit.build(spec)`'s module, data, callbacks and Trainer, and a timed window of
exactly the case's steps."""

from __future__ import annotations

import torch

from binwrn.bench import measure
from binwrn.bench.case_spec import case_spec
from binwrn.bench.measure import Case
from binwrn.models.layer_order import binarizable_names
from binwrn.train.checkpoints import EpochCheckpoints
from binwrn.train.fast_path import FastPath
from binwrn.train.fit import build

CPU = torch.device("cpu")


def test_the_case_spec_is_the_configs_net_and_trainer_on_synthetic_images() -> None:
    case = Case(depth=8, width=1, bits=1, batch_size=10, steps=2, warmup=1)
    spec = case_spec(case, CPU, fast=FastPath(channels_last=False, compile=False))
    assert len(binarizable_names(spec.model)) == 8  # WRN-8-1's 1-bit convs: model.* read
    assert len(spec.train) == 30 and spec.batch.step_batch == 10  # 3 steps, one epoch
    assert spec.trainer.settings["precision"] == "32-true"  # auto on a CPU
    assert spec.trainer.settings["max_epochs"] == 1
    assert spec.trainer.settings["enable_checkpointing"] is False  # conf/trainer/default.yaml
    assert spec.schedule.lr_max == 0.1  # optim.lr, as binwrn-run schedules it


def test_the_lightning_timing_goes_through_fit_build(monkeypatch) -> None:
    built = []

    def spy(spec, work_dir, **kwargs):
        parts = build(spec, work_dir, **kwargs)
        built.append(parts)
        return parts

    monkeypatch.setattr(measure, "build", spy)
    case = Case(depth=8, width=1, bits=1, batch_size=10, steps=2, warmup=1)
    timing = measure.lightning_path(case_spec(case, CPU), case, CPU)
    (parts,) = built
    assert any(isinstance(c, EpochCheckpoints) for c in parts.trainer.callbacks)
    assert parts.trainer.global_step == 3  # warm-up and timed steps, one epoch
    assert timing.ms_per_step > 0 and timing.warmup_s > 0
