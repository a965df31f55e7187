"""WideResNet layout (spec 1.2) and the size summary (spec 1.7)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from binwrn.errors import ConfigError
from binwrn.models import BinaryConv2d, WideResNet, size_summary
from binwrn.models.wrn import DownsampleShortcut, blocks_per_stage


@pytest.fixture(scope="module")
def wrn20_10():
    torch.manual_seed(0)
    return WideResNet(depth=20, width=10, num_classes=10)


@pytest.mark.parametrize(
    ("width", "classes", "weights"),
    [(4, 10, 4_280_512), (4, 100, 4_303_552), (10, 100, 26_794_720)],
)
def test_conv_weight_counts_match_spec(width, classes, weights):
    model = WideResNet(depth=20, width=width, num_classes=classes)
    assert size_summary(model).conv_weights == weights


def test_conv_weight_count_20_10_c10(wrn20_10):
    summary = size_summary(wrn20_10)
    assert summary.conv_weights == 26_737_120
    # The summary counts exactly the conv weights: the model has no other weight tensors
    # besides the (tiny) BN affine of the input layer.
    params = sum(p.numel() for p in wrn20_10.parameters())
    assert params == 26_737_120 + 2 * 3


SPEC_ALPHAS = {  # spec 1.2.2, read from the trained MATLAB 20-10 model
    "first": 0.27216554, "stage1": 0.0372678, "stage2": 0.02635231, "stage3": 0.0186339,
    "head": 0.0559017,
}


def test_alphas_of_wrn20_10_match_spec_table(wrn20_10):
    convs = wrn20_10.conv_layers()
    assert len(convs) == 20
    for name, conv in convs:
        c_out, c_in, k, k2 = conv.weight.shape
        assert k == k2
        assert conv.alpha == pytest.approx(math.sqrt(2.0 / (k * k * c_in)), rel=1e-12), name
        # alpha is what the forward pass actually multiplies sign(W) by.
        assert conv.effective_weight().detach().abs().unique().tolist() == pytest.approx(
            [conv.alpha], rel=1e-6
        ), name

    by_name = dict(convs)
    assert by_name["conv_in"].alpha == pytest.approx(SPEC_ALPHAS["first"], abs=1e-7)
    assert by_name["conv_out"].alpha == pytest.approx(SPEC_ALPHAS["head"], abs=1e-7)
    # Downsampling blocks: conv A takes the previous stage's width (spec rows 8 and 14-15).
    assert by_name["blocks.3.conv1"].alpha == pytest.approx(SPEC_ALPHAS["stage1"], abs=1e-7)
    assert by_name["blocks.3.conv2"].alpha == pytest.approx(SPEC_ALPHAS["stage2"], abs=1e-7)
    assert by_name["blocks.6.conv1"].alpha == pytest.approx(SPEC_ALPHAS["stage2"], abs=1e-7)
    assert by_name["blocks.6.conv2"].alpha == pytest.approx(SPEC_ALPHAS["stage3"], abs=1e-7)

    rounded = sorted({round(c.alpha, 6) for _, c in convs})
    assert rounded == [0.018634, 0.026352, 0.037268, 0.055902, 0.272166]
    counts = {}
    for _, c in convs:
        counts[round(c.alpha, 6)] = counts.get(round(c.alpha, 6), 0) + 1
    assert counts == {0.272166: 1, 0.037268: 7, 0.026352: 6, 0.018634: 5, 0.055902: 1}


def test_layout_of_wrn20_10(wrn20_10):
    convs = wrn20_10.conv_layers()
    shapes = [tuple(c.weight.shape) for _, c in convs]
    assert shapes[0] == (160, 3, 3, 3)
    assert shapes[-1] == (10, 640, 1, 1)
    strides = [c.stride[0] for _, c in convs]
    assert [i for i, s in enumerate(strides) if s == 2] == [7, 13]  # convs 8 and 14 (1-based)
    assert [c.padding[0] for _, c in convs] == [1] * 19 + [0]
    assert all(c.bits == 1 for _, c in convs)


def test_first_last_fp32_only_changes_edge_layers():
    model = WideResNet(depth=8, width=1, first_last_fp32=True)
    bits = {name: c.bits for name, c in model.conv_layers()}
    assert {n for n, b in bits.items() if b == 32} == {"conv_in", "conv_out"}
    assert all(b == 1 for n, b in bits.items() if n not in ("conv_in", "conv_out"))
    fp32_everywhere = WideResNet(depth=8, width=1, bits=32, first_last_fp32=True)
    assert all(c.bits == 32 for _, c in fp32_everywhere.conv_layers())


@pytest.mark.parametrize("depth", [21, 7, 9, 2, 0])
def test_bad_depth_raises(depth):
    with pytest.raises(ConfigError, match=f"depth={depth}"):
        WideResNet(depth=depth, width=1)


@pytest.mark.parametrize(("depth", "n"), [(8, 1), (10, 1), (14, 2), (16, 2), (20, 3), (22, 3),
                                          (26, 4), (28, 4)])
def test_blocks_per_stage_accepts_both_namings(depth, n):
    assert blocks_per_stage(depth) == n


@pytest.mark.parametrize("depth", [8, 10])
def test_smallest_net(depth):
    model = WideResNet(depth=depth, width=1)
    assert len(model.conv_layers()) == 8
    assert size_summary(model).conv_weights == 74_800


@pytest.mark.parametrize("width", [0, -1, 2.5])
def test_bad_width_raises(width):
    with pytest.raises(ConfigError, match="width"):
        WideResNet(depth=8, width=width)


def test_bad_bits_raises():
    with pytest.raises(ConfigError, match="bits=8"):
        WideResNet(depth=8, width=1, bits=8)


@pytest.mark.parametrize("bn_affine", [False, True])
def test_batch_norm_affine_flags(bn_affine):
    model = WideResNet(depth=14, width=1, bn_affine=bn_affine)
    assert model.input_bn.affine is True
    assert model.bn_out.affine is False
    internal = [m for name, m in model.named_modules()
                if isinstance(m, nn.BatchNorm2d) and name not in ("input_bn", "bn_out")]
    assert len(internal) == 2 * 6 + 1  # two per block, plus the head BN
    assert all(m.affine is bn_affine for m in internal)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.eps == 1e-5


def test_no_conv_has_bias_and_no_linear_layer():
    model = WideResNet(depth=8, width=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert all(isinstance(m, BinaryConv2d) and m.bias is None for m in convs)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


def test_downsample_shortcut_excludes_padding_and_appends_zeros():
    shortcut = DownsampleShortcut(extra_channels=3)
    out = shortcut(torch.ones(2, 2, 8, 8))
    assert out.shape == (2, 5, 4, 4)
    # count_include_pad=True would give 4/9 in the corner and 6/9 on the edges.
    assert torch.equal(out[:, :2], torch.ones(2, 2, 4, 4))
    assert torch.equal(out[:, 2:], torch.zeros(2, 3, 4, 4))


def test_downsample_shortcut_values():
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    out = DownsampleShortcut(extra_channels=1)(x)
    # 3x3 window, stride 2, pad 1: output (i, j) averages rows 2i-1..2i+1 inside the image.
    for i in range(4):
        for j in range(4):
            rows = slice(max(2 * i - 1, 0), 2 * i + 2)
            cols = slice(max(2 * j - 1, 0), 2 * j + 2)
            assert out[0, 0, i, j].item() == pytest.approx(x[0, 0, rows, cols].mean().item())


def test_blocks_use_pool_shortcut_only_when_shape_changes():
    model = WideResNet(depth=14, width=1)
    kinds = [type(b.shortcut).__name__ for b in model.blocks]
    assert kinds == ["Identity", "Identity", "DownsampleShortcut", "Identity",
                     "DownsampleShortcut", "Identity"]
    assert model.blocks[2].shortcut.extra_channels == 16
    assert model.blocks[4].shortcut.extra_channels == 32
    assert not any(p.numel() for b in model.blocks for p in b.shortcut.parameters())


def test_packed_bytes_and_compression_of_wrn20_10(wrn20_10):
    summary = size_summary(wrn20_10)
    assert summary.binary_weights == 26_737_120
    assert summary.packed_bytes == math.ceil(26_737_120 / 8)
    assert summary.fp32_bytes == 26_737_120 * 4
    assert summary.compression == pytest.approx(32.0, rel=1e-6)
    assert summary.packed_bytes / 2**20 == pytest.approx(3.19, abs=0.005)  # spec 1.7 "3.19 MiB"


def test_packed_bytes_with_fp32_layers():
    model = WideResNet(depth=8, width=1, first_last_fp32=True)
    summary = size_summary(model)
    edge = 3 * 16 * 9 + 64 * 10
    assert summary.binary_weights == 74_800 - edge
    assert summary.packed_bytes == math.ceil((74_800 - edge) / 8) + 4 * edge
    full = size_summary(WideResNet(depth=8, width=1, bits=32))
    assert full.binary_weights == 0
    assert full.packed_bytes == full.fp32_bytes == 74_800 * 4
    assert full.compression == pytest.approx(1.0)


def test_sidecar_floats_of_20_10_c100():
    # Spec 1.7: 2 x (3 + 7*160 + 6*320 + 6*640 + 100) moments, plus the input BN's affine.
    model = WideResNet(depth=20, width=10, num_classes=100)
    summary = size_summary(model)
    assert summary.sidecar_floats == 13_966 + 2 * 3


@pytest.mark.parametrize("bits", [1, 32])
def test_forward_on_raw_pixels_and_backward(bits):
    torch.manual_seed(0)
    model = WideResNet(depth=8, width=1, num_classes=7, bits=bits)
    x = torch.randint(0, 256, (4, 3, 32, 32)).float()
    logits = model(x)
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()
    # The logits' BN has no affine and GAP follows: per class, the batch mean of the pooled
    # logits is ~0 in training mode.
    assert logits.mean(dim=0).abs().max() < 1e-4
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, conv in model.conv_layers():
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 7)


def test_markdown_summary_lists_every_conv_and_the_totals():
    model = WideResNet(depth=8, width=1)
    text = size_summary(model).as_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| conv") or ".conv" in line]
    assert len(rows) == len(model.conv_layers()) == 8
    assert "| **total** | | 74,800 | | 9,350 | 299,200 |" in text


def test_forward_wiring_matches_the_spec_written_out_by_hand():
    """Spec 1.2.2 as plain functional code: input BN (affine) -> ReLU -> conv; blocks
    BN-ReLU-conv twice on the stream, the skip carrying the un-normalised stream; head
    BN-ReLU-1x1 conv, BN without affine, global average pool."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = WideResNet(depth=8, width=1, num_classes=10).train()
    x = torch.rand(6, 3, 32, 32) * 255

    def bn(m, t):
        return F.batch_norm(t, None, None, m.weight, m.bias, training=True, eps=m.eps)

    def conv(m, t):
        w = m.alpha * torch.sign(m.weight)
        return F.conv2d(t, w, stride=m.stride, padding=m.padding)

    h = conv(model.conv_in, F.relu(bn(model.input_bn, x)))
    for block in model.blocks:
        y = conv(block.conv1, F.relu(bn(block.bn1, h)))
        y = conv(block.conv2, F.relu(bn(block.bn2, y)))
        if y.shape[1] != h.shape[1]:
            pooled = F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False)
            h = torch.cat([pooled, torch.zeros_like(pooled)], dim=1)
        h = h + y
    logits = conv(model.conv_out, F.relu(bn(model.bn_head, h)))
    expected = bn(model.bn_out, logits).mean(dim=(2, 3))
    assert torch.allclose(model(x), expected, atol=1e-5, rtol=1e-5)


def test_batchnorm_net_keeps_paper_1_state_names_so_old_checkpoints_load():
    """The names a WRN-8-1 checkpoint written before model.norm existed holds, in order."""
    block = [f"blocks.{i}.{part}" for i in range(3)
             for part in ("bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                          "conv1.weight", "bn2.running_mean", "bn2.running_var",
                          "bn2.num_batches_tracked", "conv2.weight")]
    expected = ["input_bn.weight", "input_bn.bias", "input_bn.running_mean",
                "input_bn.running_var", "input_bn.num_batches_tracked", "conv_in.weight", *block,
                "bn_head.running_mean", "bn_head.running_var", "bn_head.num_batches_tracked",
                "conv_out.weight", "bn_out.running_mean", "bn_out.running_var",
                "bn_out.num_batches_tracked"]
    for net in (WideResNet(depth=8, width=1), WideResNet(depth=8, width=1, norm="batchnorm")):
        state = net.state_dict()
        # Issue 16 added each 1-bit conv's `binary_active` flag to the state (a partly binary
        # net exports as trained); a checkpoint without the flags still loads, all binary.
        assert [k for k in state if not k.endswith(".binary_active")] == expected
        old = {k: v for k, v in state.items() if k in expected}
        net.load_state_dict(old)
        assert all(bool(v) for k, v in net.state_dict().items() if k.endswith("binary_active"))
