"""Batch augmentation (spec 1.5.3): flip, random-integer pad + crop, 18x18 cutout.

A constant input of 300.0 lies outside 0..255, so every pixel an augmentation wrote is
recognisable as a value != 300.
"""

from __future__ import annotations

import pytest
import torch

from binwrn.data.augment import Augment, cutout, pad_and_crop, random_flip
from binwrn.errors import ConfigError

MARK = 300.0


def _rect_bounds(mask: torch.Tensor):
    """(top, bottom, left, right) half-open bounds if `mask` (H, W) is one filled rectangle."""
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    if len(rows) == 0:
        return None
    top, bottom = rows[0].item(), rows[-1].item() + 1
    left, right = cols[0].item(), cols[-1].item() + 1
    expected = torch.zeros_like(mask)
    expected[top:bottom, left:right] = True
    assert torch.equal(mask, expected), "region is not a filled rectangle"
    return top, bottom, left, right


def _signed_shift(lo: int, hi: int, size: int = 32) -> int:
    """The shift of a crop whose original-image rows are [lo, hi): >0 band at the start."""
    assert lo == 0 or hi == size, "bands on both sides of the image"
    return lo if lo > 0 else hi - size


def _check_integers_0_255(values: torch.Tensor) -> None:
    assert values.numel() > 0
    assert torch.equal(values, values.round())
    assert values.min() >= 0 and values.max() <= 255


def test_crop_keeps_size_and_random_fill_bands():
    torch.manual_seed(0)
    b = 600
    x = torch.full((b, 3, 32, 32), MARK)
    out = pad_and_crop(x, 4, "random")
    assert out.shape == (b, 3, 32, 32)
    written = out != MARK
    # The image part is the same region in every channel.
    assert torch.equal(written, written[:, :1].expand_as(written))
    _check_integers_0_255(out[written])

    shifts = set()
    for i in range(b):
        kept = _rect_bounds(~written[i, 0])
        assert kept is not None
        top, bottom, left, right = kept
        dy, dx = _signed_shift(top, bottom), _signed_shift(left, right)
        assert abs(dy) <= 4 and abs(dx) <= 4
        # Border bands have width |offset - pad|: the image part is (32-|dy|) x (32-|dx|).
        assert (bottom - top, right - left) == (32 - abs(dy), 32 - abs(dx))
        shifts.add((dy, dx))
    # Offsets 0..8 in each axis independently: all 81 combinations show up in 600 draws.
    assert len(shifts) == 81

    # Fill is independent per pixel and channel: channels rarely agree, values span 0..255.
    band = written[:, 0]
    same = (out[:, 0][band] == out[:, 1][band]).float().mean().item()
    assert same < 0.02
    assert out[written].min() == 0 and out[written].max() == 255


def test_crop_is_a_translation_of_the_image():
    torch.manual_seed(1)
    b, h, w = 50, 32, 32
    c_idx = torch.arange(3)[:, None, None]
    y_idx = torch.arange(h)[None, :, None]
    x_idx = torch.arange(w)[None, None, :]
    code = (1000 + 10_000 * c_idx + 100 * y_idx + x_idx).float()  # > 255: never a fill value
    x = code.expand(b, 3, h, w).clone()
    out = pad_and_crop(x, 4, "random")
    for i in range(b):
        inside = out[i] >= 1000
        v = out[i][inside].long() - 1000
        ch, yy, xx = v // 10_000, (v % 10_000) // 100, v % 100
        c_pos, y_pos, x_pos = inside.nonzero(as_tuple=True)
        assert torch.equal(ch, c_pos)
        dy, dx = (yy - y_pos).unique(), (xx - x_pos).unique()
        assert len(dy) == 1 and len(dx) == 1 and abs(dy.item()) <= 4 and abs(dx.item()) <= 4
        assert inside[0].sum() == (32 - abs(dy.item())) * (32 - abs(dx.item()))


def test_zero_fill():
    torch.manual_seed(2)
    x = torch.full((200, 3, 32, 32), MARK)
    out = pad_and_crop(x, 4, "zero")
    written = out != MARK
    assert written.any()
    assert torch.equal(out[written], torch.zeros_like(out[written]))


def test_reflect_fill_crops_a_window_of_the_reflected_image():
    torch.manual_seed(3)
    x = torch.randint(0, 256, (20, 3, 32, 32)).float()
    out = pad_and_crop(x, 4, "reflect")
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(9) for dx in range(9)
                if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets vary between images


def test_cutout_patch_is_clipped_18x18_square():
    torch.manual_seed(4)
    b, size = 1500, 18
    x = torch.full((b, 3, 32, 32), MARK)
    out = cutout(x, size)
    assert out.shape == x.shape
    patch = out != MARK
    assert torch.equal(patch, patch[:, :1].expand_as(patch))
    _check_integers_0_255(out[patch])
    assert out[patch].min() == 0 and out[patch].max() == 255
    # Fill is independent per pixel and channel.
    inside = patch[:, 0]
    assert (out[:, 0][inside] == out[:, 1][inside]).float().mean().item() < 0.02

    clipped = 0
    for i in range(b):
        bounds = _rect_bounds(patch[i, 0])
        assert bounds is not None, "every image gets a patch with at least one pixel inside"
        top, bottom, left, right = bounds
        height, width = bottom - top, right - left
        assert 1 <= height <= size and 1 <= width <= size
        if 0 < top and bottom < 32:
            assert height == size
        if 0 < left and right < 32:
            assert width == size
        if height < size or width < size:
            clipped += 1
            # a clipped patch touches the border on the clipped axis
            assert height == size or top == 0 or bottom == 32
            assert width == size or left == 0 or right == 32
    # Top-left corners range over 49 positions per axis (-17..31), of which only 0..14 keep
    # the patch whole: about 1 - (15/49)^2 = 91% of patches are clipped.
    assert 0.87 * b < clipped < 0.95 * b


def test_cutout_covers_every_pixel_equally_often():
    torch.manual_seed(5)
    b = 6000
    out = cutout(torch.full((b, 1, 32, 32), MARK), 18)
    coverage = (out != MARK).float().mean(dim=(0, 1))
    expected = (18 / 49) ** 2
    assert (coverage - expected).abs().max() < 0.03
    assert coverage[0, 0] == pytest.approx(coverage[16, 16].item(), abs=0.03)


def test_random_flip():
    torch.manual_seed(6)
    b = 2000
    x = torch.rand(b, 3, 8, 8)
    out = random_flip(x)
    flipped = (out == x.flip(3)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert torch.equal(flipped ^ kept, torch.ones(b, dtype=torch.bool))
    assert 0.45 * b < flipped.sum().item() < 0.55 * b
    assert torch.equal(out[flipped], x[flipped].flip(3))


def test_augment_pipeline_and_options():
    torch.manual_seed(7)
    x = torch.full((64, 3, 32, 32), MARK)
    assert torch.equal(Augment(flip=False, pad=0, cutout=0)(x), x)
    out = Augment(flip=True, pad=4, pad_fill="random", cutout=18)(x)
    assert out.shape == x.shape
    assert (out != MARK).any()
    with pytest.raises(ConfigError, match="bogus"):
        Augment(pad_fill="bogus")
    with pytest.raises(ConfigError):
        Augment(pad=-1)
    with pytest.raises(ConfigError):
        Augment(cutout=-3)
