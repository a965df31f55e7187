"""The LightningModule's optimisation: decay on conv weights only, per-iteration SGDR,
momentum zeroed at warm restarts, driven by a real Lightning Trainer on tiny data."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from binwrn.data import ImageSplit
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.models import BinaryConv2d, WideResNet
from binwrn.train.module import ImageClassifier, optimizer_groups
from binwrn.train.optimizers import OptimizerSettings
from binwrn.train.schedules import SGDR


def _tiny_data(n_train: int = 40, n_test: int = 20) -> DeviceAugmentedData:
    rng = np.random.default_rng(0)

    def split(n: int) -> ImageSplit:
        return ImageSplit(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                          rng.integers(0, 10, n).astype(np.int64))

    return DeviceAugmentedData(split(n_train), split(n_test), batch_size=10)


def test_weight_decay_acts_on_conv_weights_only() -> None:
    model = WideResNet(depth=8, width=1, bn_affine=True)
    decayed, plain = optimizer_groups(model, 5e-4)
    conv_weights = {id(m.weight) for m in model.modules() if isinstance(m, BinaryConv2d)}
    assert {id(p) for p in decayed["params"]} == conv_weights and decayed["weight_decay"] == 5e-4
    assert plain["weight_decay"] == 0.0
    bn_params = {id(p) for n, p in model.named_parameters() if "bn" in n.split(".")[-2]}
    assert {id(p) for p in plain["params"]} == bn_params and len(bn_params) == 16
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


class _Recorder(pl.Callback):
    """Learning rate of every step and momentum-buffer norms at each epoch's first step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.first_step_buffers: dict[int, float] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        if trainer.fit_loop.epoch_loop.batch_idx == 0:
            norms = [s["momentum_buffer"].norm().item() for s in optimizer.state.values()
                     if s.get("momentum_buffer") is not None]
            self.first_step_buffers[trainer.current_epoch] = sum(norms)


@pytest.mark.parametrize("reset", [True, False])
def test_sgdr_per_iteration_and_momentum_reset_at_restarts(reset: bool) -> None:
    torch.manual_seed(0)
    schedule = SGDR(lr_max=0.1, lr_min=1e-5)
    module = ImageClassifier(WideResNet(depth=8, width=1), schedule,
                           OptimizerSettings(reset_momentum_at_restart=reset))
    recorder = _Recorder()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, callbacks=[recorder],
                         enable_checkpointing=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(module, datamodule=_tiny_data())
    steps = 4  # 40 images / batch 10
    expected = [schedule.lr(e + (j + 1) / steps) for e in range(3) for j in range(steps)]
    assert recorder.lrs == pytest.approx(expected)
    assert recorder.lrs[2 * steps - 1] == pytest.approx(1e-5)  # end of the first cycle
    # Epoch 2 (0-based) starts the second cycle: a zeroed buffer holds just one gradient,
    # so its norm drops well below the accumulated one of the previous epoch's first step.
    ratio = recorder.first_step_buffers[2] / recorder.first_step_buffers[1]
    assert (ratio < 0.7) if reset else (ratio > 0.7)


@pytest.mark.parametrize("model", [WideResNet(depth=8, width=1), torch.nn.Linear(4, 2)],
                         ids=["wrn", "any net"])
def test_a_checkpoint_holds_the_nets_weights_under_model_and_no_class_name(model, tmp_path):
    """Checkpoints written before ImageClassifier was named WRNClassifier resume: Lightning
    stores the module's state dict (keys `model.<the net's own keys>`) and no class name."""
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu",
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(ImageClassifier(model, SGDR()))
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    saved = torch.load(tmp_path / "c.ckpt", weights_only=False)
    assert list(saved["state_dict"]) == [f"model.{key}" for key in model.state_dict()]
    assert "Classifier" not in repr({k: v for k, v in saved.items() if k != "state_dict"})
