"""Learning-rate schedules (spec 1.5.2): SGDR warm restarts, step decay, single cosine."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from binwrn.errors import ConfigError
from binwrn.train.schedules import SGDR, Cosine, StepDecay, build_schedule

CONF = Path(__file__).resolve().parents[1] / "conf"
CYCLE_ENDS = [2, 6, 14, 30, 62, 126, 254]
ITERS = 400  # batches per CIFAR epoch at batch 125


def test_sgdr_reaches_lr_min_exactly_at_each_cycle_end():
    s = SGDR(lr_max=0.1, lr_min=1e-5)
    for end in CYCLE_ENDS:
        assert s.lr(float(end)) == 1e-5, end


def test_sgdr_restarts_at_lr_max_just_after_each_cycle_end():
    s = SGDR(lr_max=0.1, lr_min=1e-5)
    assert s.lr(0.0) == pytest.approx(0.1, abs=1e-15)
    for end in CYCLE_ENDS:
        after = s.lr(end + 1 / ITERS)
        assert abs(after - 0.1) < 1e-6, end
        # and the batch just before the end is near lr_min, far below lr_max
        assert s.lr(end - 1 / ITERS) < 1e-3, end


def test_sgdr_cycle_lengths_double():
    s = SGDR()
    starts = [0] + CYCLE_ENDS[:-1]
    for start, end in zip(starts, CYCLE_ENDS, strict=True):
        assert s.cycle_at(start + 0.5) == (start, end - start)
        assert s.cycle_at(float(end)) == (start, end - start)  # a cycle owns its end point


def test_sgdr_matches_cosine_formula_per_iteration():
    s = SGDR(lr_max=0.1, lr_min=1e-5)
    # Cycle 3 runs over epochs (6, 14]: t counts epochs done including the current fraction.
    for j in (1, 57, 400, 1234, 3200):
        t = 6 + j / ITERS
        expected = 1e-5 + 0.5 * (0.1 - 1e-5) * (1 + math.cos(math.pi * (t - 6) / 8))
        assert s.lr(t) == pytest.approx(expected, rel=1e-12)
    # Strictly decreasing within a cycle.
    values = [s.lr(6 + j / ITERS) for j in range(1, 8 * ITERS + 1)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_sgdr_mid_cycle_value():
    s = SGDR(lr_max=0.1, lr_min=1e-5)
    assert s.lr(1.0) == pytest.approx((0.1 + 1e-5) / 2, rel=1e-12)
    assert s.lr(4.0) == pytest.approx((0.1 + 1e-5) / 2, rel=1e-12)  # middle of (2, 6]


def test_sgdr_restarts_at_epochs():
    s = SGDR()
    restarts = [e for e in range(200) if s.restarts_at(e)]
    assert restarts == [2, 6, 14, 30, 62, 126]
    assert s.restarts_at(254)
    assert not s.restarts_at(253) and not s.restarts_at(255)


def test_sgdr_lr_min_from_config():
    options = OmegaConf.to_container(OmegaConf.load(CONF / "schedule" / "sgdr.yaml"))
    name = options.pop("name")
    assert name == "sgdr"
    s = build_schedule(name, 0.1, **options)
    assert isinstance(s, SGDR)
    assert s.lr_min == 1e-5
    assert s.lr(2.0) == 1e-5
    other = build_schedule("sgdr", 0.05, lr_min=1e-4, first_cycle=2, cycle_mult=2)
    assert other.lr(6.0) == 1e-4
    assert other.lr(6 + 1 / ITERS) == pytest.approx(0.05, abs=1e-6)


def test_sgdr_other_cycle_settings():
    s = SGDR(lr_max=1.0, lr_min=0.0, first_cycle=3, cycle_mult=1)
    assert [e for e in range(20) if s.restarts_at(e)] == [3, 6, 9, 12, 15, 18]
    assert s.lr(1.5) == pytest.approx(0.5)


@pytest.mark.parametrize("first_cycle", [0, -2])
def test_sgdr_bad_first_cycle(first_cycle):
    with pytest.raises(ConfigError, match=f"first_cycle={first_cycle}"):
        SGDR(first_cycle=first_cycle)
    with pytest.raises(ConfigError):
        build_schedule("sgdr", 0.1, first_cycle=first_cycle)


def test_sgdr_bad_cycle_mult():
    with pytest.raises(ConfigError):
        SGDR(cycle_mult=0)


def _epoch_times(epoch: int) -> list[float]:
    """Fractional t of the first, a middle and the last batch of a 1-based epoch."""
    return [epoch - 1 + 1 / ITERS, epoch - 0.5, float(epoch)]


def test_step_decay():
    s = StepDecay(lr_max=0.1, milestones=(85, 170))
    for epoch in range(1, 255):
        expected = 0.1 if epoch <= 85 else 0.01 if epoch <= 170 else 0.001
        for t in _epoch_times(epoch):
            assert s.lr(t) == pytest.approx(expected, rel=1e-12), (epoch, t)
    assert s.lr(0.0) == pytest.approx(0.1)
    assert not any(s.restarts_at(e) for e in range(300))


def test_build_step_from_config_list():
    s = build_schedule("step", 0.1, milestones=[170, 85], factor=0.1)
    assert isinstance(s, StepDecay)
    assert s.lr(85.0) == pytest.approx(0.1)
    assert s.lr(85.5) == pytest.approx(0.01)
    assert s.lr(170.5) == pytest.approx(0.001)


def test_cosine():
    s = Cosine(lr_max=0.1, lr_min=1e-5, epochs=300)
    assert s.lr(0.0) == pytest.approx(0.1, abs=1e-15)
    assert s.lr(150.0) == pytest.approx((0.1 + 1e-5) / 2, rel=1e-12)
    assert s.lr(300.0) == 1e-5
    assert s.lr(400.0) == 1e-5  # past the end it stays at lr_min
    assert s.lr(75.0) == pytest.approx(1e-5 + 0.5 * (0.1 - 1e-5) * (1 + math.cos(math.pi / 4)))
    assert not any(s.restarts_at(e) for e in range(300))
    with pytest.raises(ConfigError):
        Cosine(epochs=0)
    assert isinstance(build_schedule("cosine", 0.1, lr_min=1e-5, epochs=10), Cosine)


def test_unknown_schedule():
    with pytest.raises(ConfigError, match="nope"):
        build_schedule("nope", 0.1)


def test_schedule_that_does_not_fit_the_trainer_is_named():
    from binwrn.train.schedules import Cosine, StepDecay

    assert SGDR().mismatch(254) is None and SGDR().mismatch(14) is None
    message = SGDR().mismatch(100)
    assert "trainer.max_epochs=100" in message and "63-126" in message
    assert StepDecay().mismatch(254) is None
    assert "85, 170" in StepDecay().mismatch(170)
    assert Cosine(epochs=300).mismatch(300) is None
    assert "schedule.epochs=300" in Cosine(epochs=300).mismatch(30)


@pytest.mark.parametrize("first, mult", [(2, 2), (1, 1), (3, 1), (1, 3)])
def test_restart_epochs_are_the_epochs_restarts_at_names(first: int, mult: int) -> None:
    """Listed one step per cycle (a loop over 10^8 epochs hung the start), the same set."""
    sgdr = SGDR(first_cycle=first, cycle_mult=mult)
    assert sgdr.restart_epochs(300) == tuple(e for e in range(1, 301) if sgdr.restarts_at(e))


def test_restart_epochs_of_a_long_run_are_quick_and_its_tag_fits_mlflow() -> None:
    from binwrn.train.run import restarts_tag

    started = time.process_time()
    epochs = SGDR(first_cycle=1, cycle_mult=1).restart_epochs(100_000)
    tag = restarts_tag(epochs)
    assert time.process_time() - started < 1.0
    assert len(epochs) == 100_000 and len(tag) <= 5000 and tag.endswith(",...")
    assert restarts_tag((2, 6, 14)) == "2,6,14"
