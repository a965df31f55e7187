"""Paper 3's layer-by-layer binarization as a Lightning callback (spec 3.3).

The state is derived from the epoch at every epoch start, never stored: a resumed run starts
its epoch with the same layers binary as the run it continues.
"""

from __future__ import annotations

import lightning.pytorch as pl

from binwrn.models.layer_order import binary_count, set_binary_layers

METRIC = "iterative/binary_layers"


class LayerByLayerBinarization(pl.Callback):
    """At the start of epoch e, order[:e // E + 1] is binary; logs how many per epoch."""

    def __init__(self, order: list[str], epochs_per_layer: int) -> None:
        self.order, self.epochs_per_layer = list(order), epochs_per_layer

    def binary_at(self, epoch: int) -> list[str]:
        return self.order[:binary_count(epoch, self.epochs_per_layer, len(self.order))]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A run resumed from a mid-epoch (SIGTERM) checkpoint skips on_train_epoch_start.
        if trainer.fit_loop.restarted_mid_epoch:
            self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        binary = self.binary_at(trainer.current_epoch)
        set_binary_layers(pl_module.model, set(binary))  # nn.Module.compile keeps the names
        # Logged with the epoch's train/* metrics (EpochMetricsToMlflow reads this prefix).
        # sync_dist: the same count on every DDP process; said so, Lightning stays quiet.
        pl_module.log(METRIC, float(len(binary)), on_step=False, on_epoch=True, sync_dist=True)
