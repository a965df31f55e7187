"""Test points with recomputed BN statistics during training (issue 16, item 3): they leave
the training exactly as it was, score what a model with recomputed statistics scores, and
go to test_recomputed/* at the epochs bn.recomputed_test_epochs names."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch

from binwrn.bench.measure import synthetic_images
from binwrn.configuration.build import build_schedule_from, recomputed_test_epochs
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash
from binwrn.data import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.models import WideResNet
from binwrn.tracking.metrics import final_value, with_error_pct
from binwrn.train.bn_stats import recompute_bn_statistics
from binwrn.train.module import ImageClassifier
from binwrn.train.recomputed_test import RecomputedStatisticsTest, scores_of
from binwrn.train.schedules import SGDR


class _After(pl.Callback):
    """The model's whole state (weights, BN buffers, binary switches) after each epoch."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.states.append(copy.deepcopy(module.model.state_dict()))


def _fit(epochs: int, with_points: bool) -> tuple[list[dict], list[dict], ImageClassifier]:
    torch.manual_seed(0)
    model = WideResNet(depth=8, width=1)
    module = ImageClassifier(model, SGDR(lr_max=0.1, lr_min=1e-5))
    # Random flips, crops and cutout: the augmentation after a test point draws from the
    # generators the recomputation also drew from.
    data = DeviceAugmentedData(synthetic_images(60), synthetic_images(30, seed=1),
                               batch_size=10, augment=Augment(flip=True, pad=4, cutout=8))
    reported: list[dict] = []
    after = _After()
    callbacks = [after]
    if with_points:
        recompute = lambda trainer: recompute_bn_statistics(  # noqa: E731
            model, data.augmented_train_batches(torch.device("cpu")))
        callbacks.insert(0, RecomputedStatisticsTest(frozenset({1, 2}), recompute,
                                                     data.test_batches, reported.append,
                                                     final_recomputes=False))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, callbacks=callbacks,
                         enable_checkpointing=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    return after.states, reported, module


def test_recomputed_points_leave_the_training_exactly_as_it_was() -> None:
    plain, nothing, _ = _fit(3, with_points=False)
    with_points, reported, _ = _fit(3, with_points=True)
    assert nothing == [] and len(reported) == 2  # after epochs 1 and 2
    assert {"test_recomputed/acc", "test_recomputed/loss",
            "test_recomputed/error_pct", "test_recomputed/top5_acc"} <= set(reported[0])
    for epoch, (a, b) in enumerate(zip(plain, with_points, strict=True)):
        assert a.keys() == b.keys()
        for key in a:  # weights, running statistics, batch counts: bit for bit
            assert torch.equal(a[key], b[key]), (epoch, key)


def test_the_point_is_the_test_of_the_model_with_recomputed_statistics() -> None:
    torch.manual_seed(0)
    model = WideResNet(depth=8, width=1)
    data = DeviceAugmentedData(synthetic_images(60), synthetic_images(30, seed=1),
                               batch_size=10)
    running = scores_of(model, data.test_batches(torch.device("cpu")), _OneDevice())
    torch.manual_seed(3)
    recomputed_model = copy.deepcopy(model)
    recompute_bn_statistics(recomputed_model, data.augmented_train_batches(torch.device("cpu")))
    expected = scores_of(recomputed_model, data.test_batches(torch.device("cpu")),
                           _OneDevice())
    assert expected != running  # fresh BN statistics (mean 0, var 1) score otherwise
    # The callback's own path: recompute on the model, test, restore.
    reported: list[dict] = []
    callback = RecomputedStatisticsTest(
        frozenset({1}), lambda trainer: (torch.manual_seed(3), recompute_bn_statistics(
            model, data.augmented_train_batches(torch.device("cpu")))),
        data.test_batches, reported.append, final_recomputes=False)
    before = copy.deepcopy(model.state_dict())
    callback.on_train_epoch_end(_Trainer(epoch=0), _Module(model))
    assert reported == [with_error_pct({f"test_recomputed/{k.split('/')[1]}": v
                                        for k, v in expected.items()})]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _OneDevice:
    root_device = torch.device("cpu")

    def reduce(self, tensor, reduce_op="sum"):
        return tensor

    class precision_plugin:  # noqa: N801
        @staticmethod
        def forward_context():
            import contextlib
            return contextlib.nullcontext()


class _Trainer:
    def __init__(self, epoch: int, max_epochs: int = 10) -> None:
        self.current_epoch, self.max_epochs, self.strategy = epoch, max_epochs, _OneDevice()


class _Module:
    def __init__(self, model) -> None:
        self.model = model


def test_the_last_epoch_is_left_to_the_final_test_when_that_recomputes() -> None:
    calls = []
    callback = RecomputedStatisticsTest(frozenset({2}), calls.append, lambda d: [],
                                        calls.append, final_recomputes=True)
    callback.on_train_epoch_end(_Trainer(epoch=1, max_epochs=2), _Module(WideResNet(8, 1)))
    assert calls == []


@pytest.mark.parametrize("overrides, epochs", [
    ([], {2, 6, 14, 30, 62, 126, 254}),  # the paper's SGDR cycle ends
    (["trainer.max_epochs=20"], {2, 6, 14}),
    (["schedule=step"], set()),  # no cycles; the final test is the one recomputed point
    (["bn.recomputed_test_epochs=[1,6,14,300]"], {1, 6, 14}),
    (["bn.recomputed_test_epochs=none"], set()),
    (["experiment=p1_mnist_1bit_20-4"], {1, 6, 14}),  # the paper's MNIST points
    (["experiment=p1_mnist_fp32_20-4"], {1, 6}),
])
def test_which_epochs_get_a_recomputed_point(overrides, epochs) -> None:
    cfg = compose(overrides)
    assert recomputed_test_epochs(cfg, build_schedule_from(cfg)) == frozenset(epochs)


def test_the_points_change_no_hash_and_bad_values_get_one_sentence() -> None:
    base = config_hash(compose([]))
    assert config_hash(compose(["bn.recomputed_test_epochs=none"])) == base
    cfg = compose(["bn.recomputed_test_epochs=sometimes"])
    with pytest.raises(ConfigError, match="cycle_ends, none, or a list"):
        recomputed_test_epochs(cfg, build_schedule_from(cfg))


def test_readers_take_the_final_test_and_fall_back_for_older_runs() -> None:
    new = {"test/error_pct": 9.0, "test_final/error_pct": 7.5, "test_recomputed/error_pct": 7.5}
    assert final_value(new) == 7.5
    assert final_value({"test/error_pct": 8.0}) == 8.0  # a run from before test_final/*
    assert final_value({"test/acc": 0.9, "test_final/acc": 0.92}, "acc") == 0.92
    assert final_value({}) is None
