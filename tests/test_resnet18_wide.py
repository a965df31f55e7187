"""Paper 1's ImageNet net 18-2.5 (spec 1.2.1): its weight count, layout and refusals."""

from __future__ import annotations

import math

import pytest
import torch

from binwrn.errors import ConfigError
from binwrn.models import BinaryConv2d, WideResNet18, size_summary
from binwrn.models.wrn import DownsampleShortcut


def test_full_size_has_the_papers_70_million_weights():
    # Built for real (280 MB, under a second); on the meta device torch's first normal_
    # costs seconds of imports.
    model = WideResNet18(width=2.5, num_classes=1000, bits=1)
    summary = size_summary(model)
    # 7x7x3x160 + 4 x 3x3x160x160 + (3x3x160x320 + 3 x 3x3x320x320) + (... 640) + (... 1280)
    # + 1280x1000: the paper's "70.0M" (Table 2), spec 1.2.1's 69.96M.
    expected = (49 * 3 * 160 + 4 * 9 * 160**2 + sum(9 * c * 2 * c + 3 * 9 * (2 * c) ** 2
                                                    for c in (160, 320, 640)) + 1280 * 1000)
    assert summary.conv_weights == expected == 69_962_720
    assert summary.binary_weights == 69_962_720
    # "require 8.3 MB" (paper 1 section 5.4): one bit per weight.
    assert summary.packed_bytes == math.ceil(69_962_720 / 8)
    assert round(summary.packed_bytes / 2**20, 1) == 8.3
    assert len(model.conv_layers()) == 18


def _head_input_size(model: WideResNet18, side: int) -> tuple[int, int]:
    seen = {}
    hook = model.bn_head.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model(torch.rand(2, 3, side, side) * 255)
    hook.remove()
    return tuple(seen["shape"][-2:])


def test_layout_of_a_narrowed_net():
    torch.manual_seed(0)
    model = WideResNet18(width=0.125, num_classes=5, bits=1)  # 8/16/32/64 channels
    logits = model(torch.rand(3, 3, 64, 64) * 255)
    assert logits.shape == (3, 5)
    convs = dict(model.conv_layers())
    assert convs["conv_in"].kernel_size == (7, 7) and convs["conv_in"].stride == (2, 2)
    assert convs["conv_out"].kernel_size == (1, 1)
    assert [b.conv2.out_channels for b in model.blocks] == [8, 8, 16, 16, 32, 32, 64, 64]
    downsampling = [i for i, b in enumerate(model.blocks) if isinstance(b.shortcut,
                                                                       DownsampleShortcut)]
    assert downsampling == [2, 4, 6]  # first block of stages 2-4, average pool + zeros
    assert all(isinstance(m, BinaryConv2d) and m.bias is None for m in convs.values())
    # Stem stride 2 and max pool: 64 -> 16 at stage 1, 2x2 at the head (224 -> 7x7).
    assert _head_input_size(model, 64) == (2, 2)
    assert _head_input_size(model, 224) == (7, 7)


@pytest.mark.parametrize(("stride", "pool", "head"), [(2, False, (4, 4)), (1, True, (4, 4)),
                                                      (1, False, (8, 8))])
def test_stem_options_change_only_the_spatial_size(stride, pool, head):
    model = WideResNet18(width=0.125, num_classes=5, stem_stride=stride, stem_pool=pool)
    assert _head_input_size(model, 64) == head
    assert size_summary(model).conv_weights == size_summary(
        WideResNet18(width=0.125, num_classes=5)).conv_weights


def test_bn_affine_follows_the_flag_but_never_on_the_logits():
    learned = WideResNet18(width=0.125, num_classes=5, bn_affine=True)
    fixed = WideResNet18(width=0.125, num_classes=5, bn_affine=False)
    assert learned.bn_head.affine and learned.blocks[0].bn1.affine
    assert not fixed.bn_head.affine and not fixed.blocks[0].bn1.affine
    assert learned.input_bn.affine and fixed.input_bn.affine
    assert not learned.bn_out.affine and not fixed.bn_out.affine


def test_first_last_fp32_keeps_the_edges_full_precision():
    model = WideResNet18(width=0.125, num_classes=5, first_last_fp32=True)
    bits = {name: conv.bits for name, conv in model.conv_layers()}
    assert bits.pop("conv_in") == 32 and bits.pop("conv_out") == 32
    assert set(bits.values()) == {1}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 2.3}, "model.width=2.3"), ({"width": 0}, "model.width=0"),
    ({"depth": 34}, "model.depth=34"), ({"stem_stride": 4}, "model.stem_stride=4"),
    ({"bits": 8}, "model.bits=8"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        WideResNet18(**{"num_classes": 5, **kwargs})
