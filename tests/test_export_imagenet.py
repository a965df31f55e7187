"""Paper 1's ImageNet net 18-2.5 (WideResNet18) packed: its own topology name, the 7x7 strided
stem and optional max pool in the one wiring both runtimes walk, the NumPy runtime and ONNX
equal to PyTorch eval, and one bit per binary weight on disk."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from helpers_export import assert_same_logits, pixel_images, trained_looking_wrn18

from binwrn.errors import DataError
from binwrn.export.format import decode, encode
from binwrn.export.graph import IMAGENET_TOPOLOGY, SHIFTED_RELU_TOPOLOGY, TOPOLOGY, wrn_ops
from binwrn.export.numpy_runtime import NumpyWRN, max_pool
from binwrn.export.onnx_export import onnx_logits, to_onnx
from binwrn.export.pack import pack_wrn, rebuild_wrn, torch_logits

VARIANTS = [  # width 0.125: 8/16/32/64 channels; 32-pixel inputs reach the head at 1x1 or 2x2
    {},
    {"stem_pool": False, "first_last_fp32": True, "input_relu": False},
    {"stem_stride": 1, "bn_affine": False, "num_classes": 3},
]


def _model_and_file(**variant):
    model, kwargs = trained_looking_wrn18(seed=3, **variant)
    blob, layout = encode(pack_wrn(model, kwargs))
    return model, decode(blob), layout


@pytest.mark.parametrize("variant", VARIANTS)
def test_numpy_onnx_and_rebuilt_torch_equal_pytorch(variant):
    model, packed, _ = _model_and_file(**variant)
    assert packed.header["topology"] == IMAGENET_TOPOLOGY
    images = pixel_images(4, seed=2)
    expected = torch_logits(model, images)
    assert expected.shape == (4, model.conv_out.weight.shape[0])
    assert np.array_equal(torch_logits(rebuild_wrn(packed), images), expected)
    assert_same_logits(expected, NumpyWRN(packed).logits(images, batch_size=3))
    graph = to_onnx(packed)
    onnx.checker.check_model(graph, full_check=True)
    assert_same_logits(expected, onnx_logits(graph, images))
    assert_same_logits(expected[:1], onnx_logits(graph, images[:1]))  # the batch stays free


@pytest.mark.parametrize("stem_pool", [True, False])
def test_the_stem_is_a_strided_7x7_conv_then_the_pool_the_header_asks_for(stem_pool):
    _, packed, _ = _model_and_file(stem_pool=stem_pool)
    ops = wrn_ops(packed.header)
    conv_in = ops[2].layer
    assert [op.kind for op in ops[:3]] == ["batchnorm", "relu", "conv2d"]
    assert (conv_in["kernel_size"], conv_in["stride"], conv_in["padding"]) == (7, 2, 3)
    assert (ops[3].kind == "max_pool") is stem_pool
    assert sum(op.kind == "max_pool" for op in ops) == int(stem_pool)
    assert sum(op.kind == "downsample" for op in ops) == 3  # stages 2-4 start with stride 2
    kinds = {node.op_type for node in to_onnx(packed).graph.node}
    assert ("MaxPool" in kinds) is stem_pool


def test_its_own_topology_name_so_a_reader_that_lacks_it_refuses():
    """Run as the CIFAR net it would compute other logits (no stem pool), so the name differs
    from the WRN topologies a version-1 reader of the CIFAR nets knows."""
    model, packed, _ = _model_and_file()
    assert IMAGENET_TOPOLOGY not in (TOPOLOGY, SHIFTED_RELU_TOPOLOGY)
    packed.header["topology"] = TOPOLOGY
    images = pixel_images(2, seed=1)
    assert not np.allclose(NumpyWRN(packed).logits(images), torch_logits(model, images),
                           rtol=1e-2)
    packed.header["topology"] = "mcdonnell-resnet18-wide-preact-v2"
    for reader in (wrn_ops, lambda header: rebuild_wrn(packed)):
        with pytest.raises(DataError, match="topology 'mcdonnell-resnet18-wide-preact-v2'"):
            reader(packed.header)


@pytest.mark.parametrize("size", [7, 8, 9])
def test_numpy_max_pool_matches_torch_and_padding_never_wins(size):
    x = -1 - np.random.default_rng(size).random((2, 3, size, size)).astype(np.float32)
    expected = F.max_pool2d(torch.from_numpy(x), 3, stride=2, padding=1).numpy()
    assert np.array_equal(max_pool(x), expected)


def test_packed_file_holds_one_bit_per_binary_weight():
    model, packed, layout = _model_and_file()
    convs = model.conv_layers()
    assert len(convs) == 18
    expected = sum(math.ceil(conv.weight.numel() / 8) for _, conv in convs)
    assert layout.sign_bits == expected
    assert all(packed.tensors[f"{name}.weight"].dtype == np.int8 for name, _ in convs)
    fp32 = 4 * sum(conv.weight.numel() for _, conv in convs)
    assert fp32 / layout.sign_bits == pytest.approx(32, rel=0.01)


def test_paper_size_18_2_5_packs_to_an_eighth_of_a_byte_per_weight():
    """The 69.96M weights of the full net (built untrained, ~5 s): 8.75 MB of sign bits."""
    from binwrn.configuration.build import build_model
    from binwrn.configuration.compose import compose
    from binwrn.configuration.stored import run_config
    from binwrn.export.job import size_only

    cfg = compose(["experiment=p1_t2_1bit_imagenet_18-2.5"])
    summary, layout = size_only(build_model(cfg), run_config(cfg))
    assert summary.binary_weights == 69_962_720
    assert layout.sign_bits == 69_962_720 // 8 == 8_745_340
    assert layout.total < 8_745_340 + 200_000  # BN side-car and header: ~2%
