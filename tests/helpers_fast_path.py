"""Train a small 1-bit WRN a few steps through binwrn's Lightning module on any device and
return its per-step losses: the fast path and the plain path must give the same curve."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from binwrn.bench.measure import synthetic_images
from binwrn.data.augment import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.models import WideResNet
from binwrn.train.fast_path import FastPath
from binwrn.train.module import ImageClassifier
from binwrn.train.schedules import SGDR


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def accelerator_of(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


def train_losses(fast: FastPath, precision: str = "32-true", steps: int = 5,
                 device: str = "cpu") -> tuple[list[float], dict[str, torch.Tensor]]:
    """Losses of `steps` SGD steps (batch 50, the paper's augmentation with cutout) and the
    final weights (on the CPU, contiguous), from the same initial weights and random draws."""
    torch.manual_seed(0)
    model = fast.apply(WideResNet(depth=8, width=1, num_classes=10, bits=1))
    data = DeviceAugmentedData(synthetic_images(50 * steps), synthetic_images(50), 50,
                               Augment(flip=True, pad=4, cutout=18), layout=fast.images)
    losses = _Losses()
    trainer = pl.Trainer(accelerator=accelerator_of(device), devices=1, max_epochs=1,
                         logger=False, precision=precision, callbacks=[losses],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    torch.manual_seed(1)  # the same shuffling and augmentation draws on both paths
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(1)
    trainer.fit(ImageClassifier(model, SGDR()), datamodule=data)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return losses.values, weights
