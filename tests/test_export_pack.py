"""Packing a WideResNet (paper-spec 1.7): the rebuilt model is the trained one in eval mode,
sizes are one bit per weight plus the float side-car, and what cannot be packed is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_export import pixel_images, trained_looking_wrn

from binwrn.errors import ConfigError, DataError
from binwrn.export.format import PackedModel, decode, encode
from binwrn.export.pack import pack_wrn, rebuild_wrn, torch_logits, zero_weights
from binwrn.models import WideResNet, size_summary


def _through_file(model: WideResNet, kwargs: dict) -> PackedModel:
    return decode(encode(pack_wrn(model, kwargs))[0])


@pytest.mark.parametrize("variant", [
    {}, {"bn_affine": True}, {"first_last_fp32": True}, {"input_relu": False},
    {"depth": 14, "width": 2, "num_classes": 7},
    {"norm": "shifted_relu", "temperature": 40.0, "input_relu": False},
])
def test_rebuilt_model_equals_the_trained_model_in_eval_mode(variant):
    model, kwargs = trained_looking_wrn(seed=3, **variant)
    rebuilt = rebuild_wrn(_through_file(model, kwargs))
    assert not rebuilt.training
    for (name, conv), (_, again) in zip(model.conv_layers(), rebuilt.conv_layers(), strict=True):
        assert torch.equal(conv.effective_weight(), again.effective_weight()), name
    for key, value in model.state_dict().items():
        if "running" in key or key.endswith(("bn.weight", "bn.bias")):
            assert torch.equal(value, rebuilt.state_dict()[key]), key
    images = pixel_images(6)
    expected = torch_logits(model, images)
    assert np.abs(expected).max() > 0.1  # the check below compares real numbers
    assert np.array_equal(torch_logits(rebuilt, images), expected)


def test_signs_are_stored_one_for_non_negative_weights():
    model, kwargs = trained_looking_wrn()
    with torch.no_grad():
        model.conv_in.weight[0, 0, 0, :] = torch.tensor([0.0, -0.0, 1e-30])
    assert zero_weights(model) == 2
    signs = pack_wrn(model, kwargs).tensors["conv_in.weight"]
    assert signs.dtype == np.int8 and signs[0, 0, 0].tolist() == [1, 1, 1]
    latent = model.conv_in.weight.detach().numpy()
    assert np.array_equal(signs == 1, latent >= 0)


def test_header_names_every_layer_with_alpha_and_stride():
    model, kwargs = trained_looking_wrn(first_last_fp32=True)
    header = pack_wrn(model, kwargs).header
    convs = [layer for layer in header["layers"] if layer["type"] == "conv2d"]
    assert [c["name"] for c in convs] == [name for name, _ in model.conv_layers()]
    assert [c["stride"] for c in convs] == [1, 1, 1, 2, 1, 2, 1, 1]
    assert [c["bits"] for c in convs] == [32, 1, 1, 1, 1, 1, 1, 32]
    inner = zip(convs[1:-1], model.conv_layers()[1:-1], strict=True)
    assert all(c["alpha"] == conv.alpha for c, (_, conv) in inner)
    assert "alpha" not in convs[0] and header["model"] == kwargs


def test_full_precision_model_is_refused_with_one_sentence():
    model, kwargs = trained_looking_wrn(bits=32)
    with pytest.raises(ConfigError, match=r"^Nothing to pack: model.bits=32 .*\.$"):
        pack_wrn(model, kwargs)


@pytest.mark.parametrize("scale", ["mean_abs", "mean_abs_channel", "none"])
def test_weight_dependent_scales_are_refused(scale):
    model, kwargs = trained_looking_wrn(scale=scale)
    with pytest.raises(ConfigError, match=f"model.scale={scale} .*model.scale=he"):
        pack_wrn(model, kwargs)


def test_tampered_alpha_or_architecture_is_refused_on_rebuild():
    model, kwargs = trained_looking_wrn()
    packed = pack_wrn(model, kwargs)
    packed.header["layers"][1]["alpha"] *= 1.01
    with pytest.raises(DataError, match="conv_in does not match"):
        rebuild_wrn(packed)
    packed = pack_wrn(model, kwargs)
    packed.header["model"]["num_classes"] = 7
    with pytest.raises(DataError, match="do not fit the architecture"):
        rebuild_wrn(packed)


@pytest.mark.parametrize(("width", "classes", "weights", "sidecar_floats"), [
    (4, 10, 4_280_512, 2 * (3 + 7 * 64 + 6 * 128 + 6 * 256 + 10) + 6),
    (4, 100, 4_303_552, 2 * (3 + 7 * 64 + 6 * 128 + 6 * 256 + 100) + 6),
    (10, 10, 26_737_120, 2 * (3 + 7 * 160 + 6 * 320 + 6 * 640 + 10) + 6),
    (10, 100, 26_794_720, 13_966 + 6),  # spec 1.7: 13,966 moments + the input BN's affine
])
def test_packed_file_sizes_of_wrn20(width, classes, weights, sidecar_floats):
    """Spec 1.7: the 1-bit weights take exactly ceil(weights / 8) bytes; the side-car is the
    BN moments (and the input BN's affine) in float32."""
    model = WideResNet(depth=20, width=width, num_classes=classes)
    summary = size_summary(model)
    blob, layout = encode(pack_wrn(model, {"depth": 20, "width": width,
                                           "num_classes": classes}))
    assert summary.conv_weights == summary.binary_weights == weights
    assert layout.sign_bits == summary.packed_bytes == math.ceil(weights / 8)
    assert layout.float32 == summary.sidecar_bytes == 4 * sidecar_floats
    assert summary.fp32_bytes == 4 * weights and summary.compression == pytest.approx(32.0)
    assert layout.total == len(blob)
    assert layout.prefix_and_header + layout.padding < 20_000  # header overhead stays small
    assert summary.metrics()["model/packed_bytes"] == math.ceil(weights / 8)
