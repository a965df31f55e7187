"""BinaryConv2d: forward alpha*sign(W), pass-through gradient, init, ablation options.

Paper-spec 1.3: W_hat = sqrt(2/(k*k*C_in)) * sign(W) in forward and backward; the latent W
receives dL/dW_hat unchanged (no alpha factor, no clipping); He fan-in init with std alpha.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.nn import functional as F

from binwrn.errors import ConfigError
from binwrn.models import BinaryConv2d, he_scale

SHAPES = [(3, 8, 3, 1), (16, 32, 3, 2), (12, 5, 1, 1)]  # (C_in, C_out, k, stride)


def _inputs(c_in: int, seed: int = 0, batch: int = 3, size: int = 9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c_in, size, size, generator=g)
    return x, g


def _alpha(k: int, c_in: int) -> float:
    return math.sqrt(2.0 / (k * k * c_in))


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride"), SHAPES)
def test_forward_uses_alpha_times_sign(c_in, c_out, k, stride):
    torch.manual_seed(1)
    conv = BinaryConv2d(c_in, c_out, k, stride)
    x, _ = _inputs(c_in)
    alpha = _alpha(k, c_in)
    assert conv.alpha == pytest.approx(alpha, rel=1e-12)

    w_hat = alpha * torch.sign(conv.weight.detach())
    expected = F.conv2d(x, w_hat, None, stride, k // 2)
    out = conv(x)
    assert torch.equal(out, expected)
    # Exactly two weight values, +alpha and -alpha (float32), none of the latent values.
    values = torch.unique(conv.effective_weight().detach())
    assert values.tolist() == pytest.approx([-alpha, alpha], rel=1e-6)
    assert out.shape == (3, c_out, (9 + 2 * (k // 2) - k) // stride + 1,
                         (9 + 2 * (k // 2) - k) // stride + 1)


def test_forward_differs_from_latent_weight_conv():
    # Guards the test above against a model that silently ran the fp32 weights.
    torch.manual_seed(2)
    conv = BinaryConv2d(4, 6, 3)
    x, _ = _inputs(4)
    assert not torch.allclose(conv(x), F.conv2d(x, conv.weight.detach(), None, 1, 1))


def _loss_grads(conv: BinaryConv2d, x: torch.Tensor, g: torch.Generator):
    """Module weight grad and dL/dW_hat for the same input and the same (random linear) loss."""
    out = conv(x)
    upstream = torch.randn(out.shape, generator=g)
    (out * upstream).sum().backward()

    w_hat = conv.effective_weight().detach().clone().requires_grad_(True)
    ref = F.conv2d(x, w_hat, None, conv.stride, conv.padding)
    (ref * upstream).sum().backward()
    return conv.weight.grad, w_hat.grad


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride"), SHAPES)
def test_latent_gradient_is_exactly_grad_wrt_binary_weight(c_in, c_out, k, stride):
    torch.manual_seed(3)
    conv = BinaryConv2d(c_in, c_out, k, stride)
    x, g = _inputs(c_in, seed=4)
    grad_w, grad_w_hat = _loss_grads(conv, x, g)
    assert grad_w is not None and grad_w.abs().sum() > 0
    assert torch.equal(grad_w, grad_w_hat)
    # The naive STE would scale it by alpha (< 1 here): make sure that is not what happened.
    assert not torch.allclose(grad_w, conv.alpha * grad_w_hat)


def test_alpha_scaled_gradient_is_alpha_times_grad():
    torch.manual_seed(5)
    conv = BinaryConv2d(16, 8, 3, grad="alpha_scaled")
    x, g = _inputs(16, seed=6)
    grad_w, grad_w_hat = _loss_grads(conv, x, g)
    alpha = _alpha(3, 16)
    assert torch.allclose(grad_w, alpha * grad_w_hat, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(grad_w, grad_w_hat)
    # Forward is unchanged by the gradient option.
    torch.manual_seed(5)
    plain = BinaryConv2d(16, 8, 3)
    assert torch.equal(plain(x), conv(x))


def test_gradient_is_not_clipped_for_large_latent_weights():
    # No |W| <= 1 gating (spec 1.3): weights far outside [-1, 1] still get the full gradient.
    torch.manual_seed(7)
    conv = BinaryConv2d(4, 4, 3)
    with torch.no_grad():
        conv.weight.mul_(100.0)
    assert conv.weight.abs().min() < 1 < conv.weight.abs().max()
    x, g = _inputs(4, seed=8)
    grad_w, grad_w_hat = _loss_grads(conv, x, g)
    assert torch.equal(grad_w, grad_w_hat)


def test_bits32_is_plain_conv():
    torch.manual_seed(9)
    conv = BinaryConv2d(8, 6, 3, 2, bits=32)
    x, g = _inputs(8, seed=10)
    out = conv(x)
    expected = F.conv2d(x, conv.weight.detach(), None, 2, 1)
    assert torch.equal(out, expected)

    upstream = torch.randn(out.shape, generator=g)
    (out * upstream).sum().backward()
    w = conv.weight.detach().clone().requires_grad_(True)
    (F.conv2d(x, w, None, 2, 1) * upstream).sum().backward()
    assert torch.equal(conv.weight.grad, w.grad)
    assert conv.bias is None


@pytest.mark.parametrize("bits", [1, 32])
def test_init_is_he_normal_with_std_alpha(bits):
    torch.manual_seed(11)
    conv = BinaryConv2d(256, 256, 3, bits=bits)
    w = conv.weight.detach()
    alpha = _alpha(3, 256)
    assert w.std().item() == pytest.approx(alpha, rel=0.02)
    assert abs(w.mean().item()) < 0.02 * alpha
    # Normal, not uniform: the excess kurtosis of a normal is 0 (a uniform's is -1.2).
    z = (w - w.mean()) / w.std()
    assert (z**4).mean().item() == pytest.approx(3.0, abs=0.1)


def test_he_scale_formula():
    assert he_scale(3, 3) == pytest.approx(0.27216553, rel=1e-7)
    assert he_scale(3, 160) == pytest.approx(0.0372678, rel=1e-6)
    assert he_scale(1, 640) == pytest.approx(0.0559017, rel=1e-6)
    # The plain-net variant of App. B: gain 4 gives 2/sqrt(F^2 C_in).
    assert he_scale(3, 3, gain=4.0) == pytest.approx(2 / math.sqrt(27), rel=1e-12)


def test_mean_abs_scale_is_layer_mean_of_abs_weights():
    torch.manual_seed(12)
    conv = BinaryConv2d(6, 5, 3, scale="mean_abs")
    w = conv.weight.detach()
    scale = w.abs().mean()
    assert scale.item() != pytest.approx(conv.alpha, rel=1e-3)
    assert torch.allclose(conv.effective_weight(), scale * torch.sign(w))
    x, _ = _inputs(6)
    assert torch.allclose(conv(x), F.conv2d(x, scale * torch.sign(w), None, 1, 1), atol=1e-6)


def test_mean_abs_channel_scale_is_per_output_channel():
    torch.manual_seed(13)
    conv = BinaryConv2d(6, 5, 3, scale="mean_abs_channel")
    w = conv.weight.detach()
    per_channel = w.abs().mean(dim=(1, 2, 3))
    w_hat = conv.effective_weight().detach()
    for o in range(5):
        assert torch.allclose(w_hat[o].abs(), per_channel[o].expand_as(w_hat[o]))
        assert torch.equal(torch.sign(w_hat[o]), torch.sign(w[o]))
    assert per_channel.max() - per_channel.min() > 1e-4  # genuinely per channel
    x, _ = _inputs(6)
    expected = F.conv2d(x, per_channel[:, None, None, None] * torch.sign(w), None, 1, 1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_mean_abs_gradient_passes_through():
    torch.manual_seed(14)
    conv = BinaryConv2d(6, 5, 3, scale="mean_abs")
    x, g = _inputs(6, seed=15)
    grad_w, grad_w_hat = _loss_grads(conv, x, g)
    assert torch.equal(grad_w, grad_w_hat)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"bits": 3}, r"\b3\b"), ({"scale": "bogus"}, "bogus"), ({"grad": "bogus"}, "bogus"),
     ({"bits": 16}, r"\b16\b")],
)
def test_bad_options_raise_config_error_naming_value(kwargs, bad):
    with pytest.raises(ConfigError) as info:
        BinaryConv2d(4, 4, 3, **kwargs)
    assert re.search(bad, str(info.value))
