"""The fast path trains the same network as the plain path: same losses step by step."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

from binwrn.bench.measure import synthetic_images
from binwrn.data.augment import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.models import WideResNet
from binwrn.train.fast_path import FastPath, resolve_precision
from binwrn.train.module import WRNClassifier
from binwrn.train.schedules import SGDR


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def _train(fast: FastPath, precision: str = "32-true", steps: int = 5) -> tuple[list, dict]:
    torch.manual_seed(0)
    model = fast.apply(WideResNet(depth=8, width=1, num_classes=10, bits=1))
    data = DeviceAugmentedData(synthetic_images(50 * steps), synthetic_images(50), 50,
                               Augment(flip=True, pad=4, cutout=18), layout=fast.images)
    losses = _Losses()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, precision=precision,
                         callbacks=[losses], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    torch.manual_seed(1)  # the same shuffling and augmentation draws on both paths
    trainer.fit(WRNClassifier(model, SGDR()), datamodule=data)
    return losses.values, {k: v.contiguous() for k, v in model.state_dict().items()}


def test_channels_last_follows_the_plain_loss_trajectory():
    plain_losses, plain_weights = _train(FastPath(channels_last=False, compile=False))
    fast_losses, fast_weights = _train(FastPath(channels_last=True, compile=False))
    assert len(plain_losses) == 5 and plain_losses[0] != plain_losses[-1]
    assert fast_losses == pytest.approx(plain_losses, rel=1e-4)
    for name, weight in plain_weights.items():
        # reduction order differs between layouts: agreement to float noise, not bit for bit
        assert torch.allclose(fast_weights[name], weight, rtol=1e-2, atol=1e-4), name


def test_bf16_autocast_stays_near_the_fp32_trajectory():
    plain_losses, _ = _train(FastPath(False, False))
    bf16_losses, _ = _train(FastPath(False, False), precision="bf16-mixed")
    assert bf16_losses == pytest.approx(plain_losses, rel=0.05)  # bf16: ~3 significant digits


@pytest.mark.slow
def test_compiled_network_follows_the_plain_loss_trajectory():
    plain_losses, _ = _train(FastPath(False, False), steps=3)
    compiled_losses, weights = _train(FastPath(False, compile=True), steps=3)
    assert compiled_losses == pytest.approx(plain_losses, rel=1e-3)
    assert not any(k.startswith("_orig_mod") for k in weights)  # checkpoints stay loadable


def test_auto_switches_are_off_on_a_cpu_and_bad_values_refused():
    speed = OmegaConf.create({"channels_last": "auto", "compile": "auto"})
    assert FastPath.from_config(speed, "cpu") == FastPath(False, False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("16-mixed", "gpu") == "16-mixed"
    with pytest.raises(ConfigError, match="speed.compile=sometimes"):
        FastPath.from_config(OmegaConf.create({"channels_last": True, "compile": "sometimes"}),
                             "cpu")
