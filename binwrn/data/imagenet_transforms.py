"""Decode one ImageNet JPEG and cut the crops the net sees, as uint8 (3, H, W) tensors.

Paper 1 (section 4) trains ImageNet with "scale, crop and flip augmentation as in He et al.
(2015b)", without colour augmentation, and tests on a single centre crop or on 25 crops
"5 scales x 5 random positions" with the softmax averaged (spec 1.5.3). What it leaves open is
set to He et al.'s ResNet recipe (the paper it cites), each an option (`dataset.*`):
- train_crop "scale_jitter" (default): the shorter side resized to a size drawn uniformly
  from [256, 480], a random 224x224 crop, a flip with p=0.5. The crop is cut from the
  decoded image and resized once, which equals resize-then-crop up to sub-pixel alignment.
  "random_resized" is torchvision's reference recipe instead (8-100% of the area, aspect
  3/4-4/3, Szegedy et al. 2015), the standard practice of later ImageNet papers;
- single crop: shorter side resized to 256, the centre 224x224 (He et al.; 224/256 = 0.875);
- multi-crop scales: He et al.'s five test scales, shorter side 224, 256, 384, 480, 640;
  positions "random" (the paper's words; drawn from the image's index, so every evaluation
  sees the same crops) or "corners_center" (the four corners and the centre).
Pixels stay raw 0-255 (the input BN normalises, spec 1.5.1): no mean or std is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from binwrn.data.rules import DECODERS, POSITIONS, TRAIN_CROPS
from binwrn.errors import ConfigError, DataError

CROPS_PER_SCALE = 5


class UnreadableImage(DataError):
    """An image no decoder can read. A DataLoader worker's exception reaches the main process
    as `type(error)(text with the worker's traceback)`; keep only the sentence."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        super().__init__(message.rsplit(marker, 1)[-1].strip())


def read_rgb(path: str, decoder: str = "pil") -> torch.Tensor:
    """uint8 (3, H, W); grey and CMYK JPEGs (a few dozen in ImageNet) become RGB. Pillow
    sniffs the format (one ImageNet PNG is named .JPEG)."""
    if decoder not in DECODERS:
        raise ConfigError(f"dataset.decoder={decoder} is not supported: use one of "
                          f"{', '.join(DECODERS)}.")
    try:
        with Image.open(path) as image:
            pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))
        return torch.from_numpy(pixels).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UnreadableImage(f"Cannot read image {path} ({str(err).splitlines()[0]}): "
                              "replace or remove it.") from None


def _pair(values, name: str) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not 0 < low <= high:
        raise ConfigError(f"dataset.{name}={list(values)} is not allowed: give [low, high] "
                          "with 0 < low <= high.")
    return low, high


@dataclass(frozen=True)
class CropSettings:
    """How images become crops of `size` pixels; checked where it is built (ConfigError)."""

    size: int = 224
    train_crop: str = "scale_jitter"
    scale_range: tuple[int, int] = (256, 480)  # scale_jitter: shorter side, He et al. 2015
    area_range: tuple[float, float] = (0.08, 1.0)  # random_resized: torchvision's defaults
    aspect_range: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    eval_resize: int = 256
    multi_crop_scales: tuple[int, ...] = (224, 256, 384, 480, 640)
    multi_crop_positions: str = "random"
    decoder: str = "pil"

    def __post_init__(self) -> None:
        if self.train_crop not in TRAIN_CROPS:
            raise ConfigError(f"dataset.train_crop={self.train_crop} is not supported: use one "
                              f"of {', '.join(TRAIN_CROPS)}.")
        if self.multi_crop_positions not in POSITIONS:
            raise ConfigError(f"dataset.multi_crop_positions={self.multi_crop_positions} is not "
                              f"supported: use one of {', '.join(POSITIONS)}.")
        if self.decoder not in DECODERS:
            raise ConfigError(f"dataset.decoder={self.decoder} is not supported: use one of "
                              f"{', '.join(DECODERS)}.")
        _pair(self.scale_range, "scale_range")
        _pair(self.area_range, "area_range")
        _pair(self.aspect_range, "aspect_range")
        sides = {"scale_range": min(self.scale_range), "eval_resize": self.eval_resize,
                 "multi_crop_scales": min(self.multi_crop_scales, default=self.size)}
        for key, side in sides.items():
            if side < self.size:
                raise ConfigError(f"dataset.{key} resizes a shorter side to {side}, below the "
                                  f"{self.size}-pixel crop (dataset.image_size): use sizes >= "
                                  f"{self.size}.")

    @property
    def multi_crop_count(self) -> int:
        return CROPS_PER_SCALE * len(self.multi_crop_scales)

    def train_crop_of(self, image: torch.Tensor) -> torch.Tensor:
        """One random crop (scale jitter or random-resized) and a random flip."""
        if self.train_crop == "scale_jitter":
            top, left, side_h, side_w = self._scale_jitter_box(image)
        else:
            top, left, side_h, side_w = RandomResizedCrop.get_params(
                image, list(self.area_range), list(self.aspect_range))
        crop = TF.resized_crop(image, top, left, side_h, side_w, [self.size, self.size],
                               antialias=True)
        if self.flip and torch.rand(()) < 0.5:
            crop = TF.horizontal_flip(crop)
        return crop

    def _scale_jitter_box(self, image: torch.Tensor) -> tuple[int, int, int, int]:
        """The region of the decoded image that becomes the crop after resizing the shorter
        side to S ~ U{low..high}: a square of size * short / S original pixels."""
        height, width = image.shape[-2:]
        low, high = (int(v) for v in self.scale_range)
        target = int(torch.randint(low, high + 1, ()))
        side = min(round(self.size * min(height, width) / target), height, width)
        top = int(torch.randint(0, height - side + 1, ()))
        left = int(torch.randint(0, width - side + 1, ()))
        return top, left, side, side

    def centre_crop_of(self, image: torch.Tensor) -> torch.Tensor:
        """The single test crop: shorter side to eval_resize, then the centre size x size."""
        return TF.center_crop(TF.resize(image, self.eval_resize, antialias=True), self.size)

    def multi_crops_of(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """(5 x scales, 3, size, size): five crops at each shorter-side scale."""
        generator = torch.Generator().manual_seed(seed)
        crops = []
        for scale in self.multi_crop_scales:
            resized = TF.resize(image, int(scale), antialias=True)
            if self.multi_crop_positions == "corners_center":
                crops += TF.five_crop(resized, self.size)
                continue
            height, width = resized.shape[-2:]
            for _ in range(CROPS_PER_SCALE):
                top = int(torch.randint(0, height - self.size + 1, (), generator=generator))
                left = int(torch.randint(0, width - self.size + 1, (), generator=generator))
                crops.append(TF.crop(resized, top, left, self.size, self.size))
        return torch.stack(crops)
