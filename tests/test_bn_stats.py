"""Post-training BN statistics (spec 1.4, [M]): per-batch moments averaged over batches,
with the standard deviation sqrt(var + eps) averaged rather than the variance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from binwrn.models import WideResNet
from binwrn.train import bn_stats
from binwrn.train.bn_stats import recompute_bn_statistics


def _batches():
    g = torch.Generator().manual_seed(0)
    # Batches with clearly different spreads, so averaging std and averaging var disagree.
    return [torch.rand(6, 3, 32, 32, generator=g) * 255 * scale + shift
            for scale, shift in ((0.2, 10.0), (1.0, 0.0), (3.0, -50.0))]


class _Recorder:
    """Per-batch channel mean and biased variance of a BN layer's input."""

    def __init__(self, module: nn.BatchNorm2d):
        self.means, self.vars = [], []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        x = inputs[0].detach().double()
        self.means.append(x.mean(dim=(0, 2, 3)))
        self.vars.append(x.var(dim=(0, 2, 3), unbiased=False))

    def expected(self, eps: float):
        mean = torch.stack(self.means).mean(dim=0)
        std = torch.stack([(v + eps).sqrt() for v in self.vars]).mean(dim=0)
        return mean, std**2 - eps, torch.stack(self.vars).mean(dim=0)


@pytest.mark.parametrize("start_training", [False, True])
def test_recompute_matches_average_of_batch_moments(start_training):
    torch.manual_seed(1)
    model = WideResNet(depth=8, width=1, num_classes=10)
    model.train(start_training)
    watched = {"input_bn": model.input_bn, "bn_head": model.bn_head, "bn_out": model.bn_out}
    recorders = {name: _Recorder(m) for name, m in watched.items()}
    batches = _batches()

    count = recompute_bn_statistics(model, iter(batches))
    for r in recorders.values():
        r.handle.remove()

    assert count == 3
    assert model.training is start_training
    assert all(m.training is start_training for m in model.modules())
    for name, module in watched.items():
        rec = recorders[name]
        assert len(rec.means) == 3, name
        mean, var, naive_var = rec.expected(module.eps)
        assert torch.allclose(module.running_mean.double(), mean, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(module.running_var.double(), var, rtol=1e-5, atol=1e-6), name
        if name == "input_bn":
            # The test can tell the two averages apart: mean of var is much larger here.
            assert (naive_var - var).abs().min() > 100.0

    # Raw 0-255 input: the input BN's stored moments are in pixel units, not the defaults.
    assert model.input_bn.running_var.min() > 100.0


def test_batches_are_forwarded_in_training_mode_and_the_mode_is_restored():
    torch.manual_seed(2)
    model = WideResNet(depth=8, width=1, num_classes=10).eval()
    modes = []
    handle = model.input_bn.register_forward_pre_hook(lambda m, i: modes.append(m.training))
    batches = _batches()
    recompute_bn_statistics(model, batches)
    handle.remove()
    assert modes == [True, True, True]
    assert not model.training


def test_no_batches_leaves_statistics_alone():
    model = WideResNet(depth=8, width=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recompute_bn_statistics(model, []) == 0
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_mode_restored_after_error():
    model = WideResNet(depth=8, width=1).eval()

    def broken():
        yield torch.rand(2, 3, 32, 32)
        raise RuntimeError("data loader failed")

    with pytest.raises(RuntimeError, match="data loader failed"):
        recompute_bn_statistics(model, broken())
    assert not model.training
    assert not any(m._forward_pre_hooks for m in model.modules())


@torch.no_grad()
def _recompute_as_before_issue_30(model: nn.Module, batches, seed: int) -> None:
    """recompute_bn_statistics as it was before it ran in inference mode (issue 30)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums = {m: [0.0, 0.0] for m in layers}

    def record(module, inputs) -> None:
        var, mean = torch.var_mean(inputs[0], dim=[0, 2, 3], unbiased=False)
        sums[module][0] = sums[module][0] + mean.double()
        sums[module][1] = sums[module][1] + (var.double() + module.eps).sqrt()

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        count = sum(1 for images in batches if model(images) is not None)
    for hook in hooks:
        hook.remove()
    for m, (mean_sum, std_sum) in sums.items():
        m.running_mean.copy_(mean_sum / count)
        m.running_var.copy_((std_sum / count) ** 2 - m.eps)


def test_the_statistics_are_those_of_before_inference_mode_to_the_bit() -> None:
    """The same weights and seed give the statistics of the no_grad version exactly,
    batches drawn (augmented) inside the seeded generators as a run draws them."""
    from binwrn.data.augment import Augment

    torch.manual_seed(0)
    model = WideResNet(depth=10, width=1, bits=1)
    images = torch.randint(0, 256, (40, 3, 32, 32)).float()
    augment = Augment(flip=True, pad=4, cutout=18)

    def batches():
        yield from (augment(images[torch.randperm(40)[:10]]) for _ in range(4))

    before, after = WideResNet(depth=10, width=1, bits=1), model
    before.load_state_dict(model.state_dict())
    _recompute_as_before_issue_30(before, batches(), seed=7)
    assert recompute_bn_statistics(after, batches(), seed=7) == 4
    for (name, old), new in zip(before.state_dict().items(), after.state_dict().values(),
                                strict=True):
        assert torch.equal(old, new), name


def _activations():
    """BN inputs of the kinds a net makes: raw pixels (large mean), centred and offset
    activations, means near zero, 2-D and 3-D inputs, one channel, channels-last memory."""
    g = torch.Generator().manual_seed(1)
    yield torch.randint(0, 256, (25, 3, 32, 32), generator=g).float()
    for scale, shift in ((1.0, 0.0), (3.0, 0.3), (0.01, 5.0), (50.0, -1e-3)):
        yield torch.randn(25, 16, 16, 16, generator=g) * scale + shift
    yield torch.randn(40, 10, generator=g) * 2 + 1
    yield torch.randn(8, 6, 50, generator=g)
    yield torch.randn(25, 1, 8, 8, generator=g) + 0.5
    yield (torch.randn(25, 12, 8, 8, generator=g) + 1).contiguous(
        memory_format=torch.channels_last)


def _var_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.var_mean(x, dim=[d for d in range(x.dim()) if d != 1], unbiased=False)


@pytest.mark.parametrize("agree", [bn_stats.AGREE, 0.0, 1.0])
def test_batch_moments_are_var_means_to_the_bit(monkeypatch, agree: float) -> None:
    """The two-pass moments round to var_mean's float32 values: with the shipped margin, with
    none (no channel re-reduced), and with every channel re-reduced by var_mean (the
    fallback, a lone channel included)."""
    monkeypatch.setattr(bn_stats, "AGREE", agree)
    for x in _activations():
        got, want = bn_stats.batch_moments(x), _var_mean(x)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype == torch.float32
            assert torch.equal(g, w), (tuple(x.shape), agree)


def test_only_channels_near_a_rounding_boundary_are_reduced_again(monkeypatch) -> None:
    """A channel whose exact mean is the midpoint between two float32 values is re-reduced
    by var_mean, with one other channel (var_mean reduces a lone channel differently); the
    rest keep the two-pass value."""
    x = torch.randn(8, 4, 4, 4, generator=torch.Generator().manual_seed(2)) + 2.0
    low = torch.tensor(1.5, dtype=torch.float32)
    x[:, 2] = low
    x[:4, 2] = torch.nextafter(low, torch.tensor(2.0))  # half the 128 values one step up
    calls = []
    real = torch.var_mean

    def counted(t, *args, **kwargs):
        calls.append(t.shape[1])
        return real(t, *args, **kwargs)

    monkeypatch.setattr(bn_stats.torch, "var_mean", counted)
    got = bn_stats.batch_moments(x)
    monkeypatch.setattr(bn_stats.torch, "var_mean", real)
    assert calls == [2]  # channel 2 and its neighbour, not the layer
    for g, w in zip(got, _var_mean(x), strict=True):
        assert torch.equal(g, w)
