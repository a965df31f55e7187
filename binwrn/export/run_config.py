"""What the exporters read of a trained run's config, as plain values (the configuration
package builds one from the run's stored config: binwrn/configuration/stored.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from binwrn.data.loading import DataSource

if TYPE_CHECKING:  # imported where used: torchvision costs seconds at startup
    from binwrn.data.imagenet_transforms import CropSettings


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    model_target: str  # the net's class, as Hydra names it (model._target_)
    model_kwargs: dict  # its constructor arguments
    data: DataSource  # the data set it was trained and tested on
    crops: CropSettings | None = None  # a streaming data set's (ImageNet) centre crops
    channels: int = 3
    iterative_order: str | list = "none"  # paper 3's layer order (iterative.order)
    epochs_per_layer: int | None = None
    max_epochs: int = 0

    def data_info(self) -> dict:
        """The data set as the packed file's header records it."""
        d = self.data
        return {"dataset": d.name, "num_classes": d.num_classes, "image_size": d.image_size,
                "test_limit": d.test_limit}
