"""`make bench` times the path binwrn-run trains with (issue 20): the case's RunSpec built from
the config, `fit.build(spec)`'s module, data, callbacks and Trainer, and a timed window of
exactly the case's steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from binwrn.bench import measure, run
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


def test_the_median_interval_is_the_binomial_one_and_the_range_below_six() -> None:
    from binwrn.bench.spread import Spread, median_interval

    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0]
    assert median_interval(values) == (2.0, 8.0)  # n 9: x(2)..x(8) holds it 96 % of times
    assert median_interval(values[:5]) == (1.0, 9.0)  # too few for 95 %: the range
    spread = Spread((1.0, 1.1, 0.9, 1.0, 1.05))
    assert spread.median == 1.0 and spread.relative_width() == pytest.approx(0.2)
    assert spread.text() == "1.000 (0.900-1.100, 95 % CI 0.900-1.100, n 5)"


def test_rounds_go_on_until_the_ratio_is_known(monkeypatch) -> None:
    """Plain then binwrn, back to back; more rounds while the ratio's interval is wide."""
    order, noisy = [], iter([1.0, 1.3, 1.0, 0.8, 1.0, 1.2, 1.0, 1.0, 1.0])
    monkeypatch.setattr(measure, "plain_loop", lambda *a: order.append("plain") or
                        measure.Timing(100.0, 1.0))
    monkeypatch.setattr(run, "lightning_path", lambda *a: order.append("binwrn") or
                        measure.Timing(100.0 * next(noisy), 1.0))
    monkeypatch.setattr(run, "plain_loop", measure.plain_loop)
    result = run.measure(Case(depth=8, width=1, bits=1, batch_size=10, steps=1), CPU,
                         rounds=(3, 7))
    assert order[:4] == ["plain", "binwrn", "plain", "binwrn"]
    assert len(result.ratios().values) == 7  # never within 5 %: stopped at the most
    assert result.ratio == 1.0


@pytest.mark.slow
def test_the_whole_run_row_times_both_processes_and_the_run_phases(tmp_path: Path) -> None:
    from binwrn.bench import whole_run
    from binwrn.bench.synthetic_cifar import write_cifar10

    data = write_cifar10(tmp_path / "data", train_per_batch=50, test=100)
    result = whole_run.measure(data, tmp_path, (8, 1, 1), rounds=1)
    (timing,) = result.binwrn
    # psutil dates a process from the boot time, which Linux gives in whole seconds
    assert timing.wall_s + 1 > timing.phases["time/process_s"] > timing.loop_s > 0
    assert 0 < timing.exit_s < timing.wall_s
    assert result.plain_s[0] > 0 and result.ratios().median > 0
    text = whole_run.markdown(result)
    assert "| binwrn-run |" in text and "exit" in text and "loop" in text
