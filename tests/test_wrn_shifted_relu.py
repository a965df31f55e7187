"""Paper 2's WRN without batch normalisation (spec 2.2): the shifted ReLU, the wiring, the
temperature, its config defaults and presets, and that it trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from binwrn.configuration.build import build_model, build_schedule_from, unused_bn_option
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash, curated_params, run_name
from binwrn.errors import ConfigError
from binwrn.models import WideResNet, size_summary
from binwrn.models.wrn import shifted_relu
from binwrn.train.bn_stats import recompute_bn_statistics

_BN = nn.modules.batchnorm._BatchNorm


def srelu_net(temperature: float = 40.0, **kwargs) -> WideResNet:
    options = {"depth": 8, "width": 1, "input_relu": False, **kwargs}
    return WideResNet(norm="shifted_relu", temperature=temperature, **options)


def raw_images(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Raw 0-255 pixels, as binwrn feeds them (no normalisation: the input BN does it)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=generator).float()


def test_shifted_relu_is_max_x_minus_one():
    x = torch.tensor([-7.0, -1.5, -1.0, -0.75, -0.25, 0.0, 2.0**-20, 3.0])
    assert shifted_relu(x).tolist() == [-1.0, -1.0, -1.0, -0.75, -0.25, 0.0, 2.0**-20, 3.0]
    # Exact for small x too, where the Keras form ReLU(x + 1) - 1 rounds 1e-8 to 0.
    small = torch.tensor([1e-8, -1e-8])
    assert torch.equal(shifted_relu(small), small)


def test_shifted_relu_gradient_is_zero_below_minus_one_and_one_above():
    x = torch.tensor([-9.0, -2.0, -1.001, -0.999, 0.0, 0.5, 4.0], requires_grad=True)
    shifted_relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("depth", [8, 20])
def test_the_only_batch_norm_is_the_input_one(depth):
    model = srelu_net(depth=depth)
    norms = [name for name, m in model.named_modules() if isinstance(m, _BN)]
    assert norms == ["input_bn"]
    assert model.input_bn.affine is True  # learned scale and offset on the raw input
    assert not hasattr(model, "bn_head") and not hasattr(model, "bn_out")  # no head BN
    # Everything else with weights is a bias-free conv: same 1-bit layers as paper 1.
    assert len(model.conv_layers()) == 6 * ((depth - 2) // 6) + 2
    assert all(conv.bias is None and conv.bits == 1 for _, conv in model.conv_layers())


def test_size_of_wrn20_10_matches_paper_1_without_the_bn_side_car():
    model = srelu_net(depth=20, width=10)
    summary = size_summary(model)
    assert summary.conv_weights == 26_737_120  # the same convs as paper 1's 20-10 (spec 1.7)
    assert summary.sidecar_floats == 4 * 3  # input BN: mean, var, gamma, beta per channel


@pytest.mark.parametrize("bits", [1, 32])
def test_output_is_one_logit_per_class(bits):
    model = srelu_net(bits=bits, num_classes=7)
    logits = model(raw_images(4))
    assert logits.shape == (4, 7) and torch.isfinite(logits).all()
    assert model.eval()(raw_images(1)).shape == (1, 7)


def test_temperature_divides_the_logits():
    torch.manual_seed(0)
    cooled, plain = srelu_net(temperature=32.0), srelu_net(temperature=1.0)
    plain.load_state_dict(cooled.state_dict())
    x = raw_images()
    # A power of two divides every float exactly, before and after the average pool alike.
    assert torch.equal(cooled(x) * 32.0, plain(x))
    assert not torch.equal(cooled(x), plain(x))
    forty = srelu_net(temperature=40.0)
    forty.load_state_dict(cooled.state_dict())
    torch.testing.assert_close(forty(x) * 40.0, plain(x), rtol=1e-5, atol=1e-6)


def test_forward_wiring_matches_spec_2_2_written_out_by_hand():
    """Input BN (affine, training statistics) straight into conv 1; blocks sReLU-conv twice
    on the stream, the skip carrying the stream (3x3/2 average pool + zero channels where
    the shape changes); head sReLU -> 1x1 conv -> / T -> global average pool."""
    torch.manual_seed(0)
    model = srelu_net(temperature=25.0).train()
    with torch.no_grad():  # a learned affine that is not the identity, so its use is checked
        model.input_bn.weight.copy_(torch.tensor([0.7, 1.3, 0.9]))
        model.input_bn.bias.copy_(torch.tensor([1.5, -0.4, 0.2]))
    x = raw_images()

    def conv(m, t):
        return F.conv2d(t, m.alpha * torch.sign(m.weight), stride=m.stride, padding=m.padding)

    def srelu(t):
        return torch.maximum(t, torch.full_like(t, -1.0))

    bn = model.input_bn
    h = conv(model.conv_in, F.batch_norm(x, None, None, bn.weight, bn.bias, training=True))
    for block in model.blocks:
        y = conv(block.conv2, srelu(conv(block.conv1, srelu(h))))
        if y.shape[1] != h.shape[1]:
            pooled = F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False)
            h = torch.cat([pooled, torch.zeros_like(pooled)], dim=1)
        h = h + y
    expected = (conv(model.conv_out, srelu(h)) / 25.0).mean(dim=(2, 3))
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature", [0, -40.0, float("nan"), float("inf"), "hot", True,
                                         None])
def test_a_temperature_that_cannot_scale_the_logits_is_refused(temperature):
    with pytest.raises(ConfigError, match="model.temperature=.*positive number"):
        srelu_net(temperature=temperature)


def test_temperature_with_batchnorm_and_unknown_norm_are_refused():
    with pytest.raises(ConfigError, match="only applies to model.norm=shifted_relu"):
        WideResNet(depth=8, width=1, temperature=40.0)
    with pytest.raises(ConfigError, match="model.norm=layernorm is not supported"):
        WideResNet(depth=8, width=1, norm="layernorm")


@pytest.mark.parametrize(("dataset", "bits", "temperature"), [
    ("cifar10", 32, 80.0), ("cifar10", 1, 40.0), ("cifar100", 32, 25.0), ("cifar100", 1, 25.0),
    ("digits", 1, 40.0),  # not a paper data set: CIFAR-10's values
])
def test_temperature_default_is_paper_2s_for_the_data_set_and_bits(dataset, bits, temperature):
    cfg = compose([f"dataset={dataset}", f"model.bits={bits}", "model.norm=shifted_relu",
                   "experiment=smoke"])
    assert cfg.model.temperature == temperature
    assert cfg.model.input_relu is False  # [K]: the input BN feeds conv 1 directly
    model = build_model(cfg)
    assert model.temperature == temperature and model.norm == "shifted_relu"
    assert curated_params(cfg)["model.temperature"] == temperature
    assert curated_params(cfg)["model.norm"] == "shifted_relu"


def test_batchnorm_keeps_paper_1_defaults_and_an_explicit_choice_wins():
    cfg = compose([])
    assert (cfg.model.norm, cfg.model.temperature, cfg.model.input_relu) == \
        ("batchnorm", None, True)
    chosen = compose(["model.norm=shifted_relu", "model.temperature=10",
                      "model.input_relu=true"])
    assert (chosen.model.temperature, chosen.model.input_relu) == (10, True)


@pytest.mark.parametrize("value", ["0", "-5", "null"])
def test_bad_temperature_from_the_command_line_gets_one_sentence(value):
    cfg = compose(["experiment=smoke", "model.norm=shifted_relu", f"model.temperature={value}"])
    with pytest.raises(ConfigError, match="model.temperature="):
        build_model(cfg)


def test_paper_2_keys_leave_paper_1_hashes_alone_and_the_paper_t_is_one_config():
    from omegaconf import OmegaConf

    for overrides in ([], ["experiment=smoke", "dataset=digits", "bn=learned"]):
        cfg = compose(overrides)
        stripped = OmegaConf.to_container(cfg, resolve=True)
        for key in ("norms",):
            stripped.pop(key)
        for key in ("norm", "temperature"):
            stripped["model"].pop(key)
        assert config_hash(cfg) == config_hash(OmegaConf.create(stripped))
    srelu = compose(["model.norm=shifted_relu"])
    assert config_hash(srelu) != config_hash(compose([]))
    # The grid's default T and the temperature sweep's T=40 are the same training run.
    assert config_hash(srelu) == config_hash(compose(["model.norm=shifted_relu",
                                                      "model.temperature=40"]))
    assert config_hash(srelu) != config_hash(compose(["model.norm=shifted_relu",
                                                      "model.temperature=10"]))


def test_run_name_says_shifted_relu_and_t():
    cfg = compose(["model.norm=shifted_relu", "schedule=cosine", "trainer.max_epochs=300"])
    assert run_name(cfg) == "cifar10-wrn20-10-1bit-cosine-srelu-T40-cutout18"


def test_bn_options_without_a_target_warn_and_still_build():
    cfg = compose(["experiment=smoke", "model.norm=shifted_relu", "bn=learned"])
    assert "no effect" in unused_bn_option(cfg)
    model = build_model(cfg)
    assert [n for n, m in model.named_modules() if isinstance(m, _BN)] == ["input_bn"]
    assert unused_bn_option(compose(["experiment=smoke", "bn=learned"])) is None


PRESETS = {  # spec 2.3 / 2.4: WRN-20-10, cutout 18; BN rows paper 1's recipe
    "p2_fp32_bn": (32, "batchnorm", "sgdr", 254),
    "p2_1bit_bn": (1, "batchnorm", "sgdr", 254),
    "p2_fp32_srelu": (32, "shifted_relu", "cosine", 300),
    "p2_1bit_srelu": (1, "shifted_relu", "cosine", 300),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_paper_2_presets_compose_with_the_recipe(preset, dataset):
    bits, norm, schedule, epochs = PRESETS[preset]
    cfg = compose([f"experiment={preset}", f"dataset={dataset}"])
    assert (cfg.model.depth, cfg.model.width, cfg.data.cutout) == (20, 10, 18)
    assert (cfg.model.bits, cfg.model.norm, cfg.schedule.name) == (bits, norm, schedule)
    assert cfg.trainer.max_epochs == epochs and cfg.schedule.lr_min == 1e-5
    assert cfg.optim.lr == 0.1 and cfg.data.batch_size == 125
    schedule = build_schedule_from(cfg)  # per batch from 0.1, ending at 1e-5 with the run
    assert schedule.lr(0.0) == 0.1 and schedule.lr(epochs) == pytest.approx(1e-5)
    assert schedule.mismatch(epochs) is None
    if norm == "shifted_relu":
        assert cfg.schedule.epochs == 300  # one cosine cycle over the whole run
        assert cfg.model.temperature == {("cifar10", 32): 80.0, ("cifar10", 1): 40.0}.get(
            (dataset, bits), 25.0)
    else:
        assert cfg.model.temperature is None and cfg.bn.learn_affine is False


def test_one_training_step_of_a_1bit_net_changes_weights_and_stays_finite():
    torch.manual_seed(0)
    model = srelu_net(bits=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convs = [m.weight for _, m in model.conv_layers()]
    others = [p for p in model.parameters() if all(p is not w for w in convs)]
    optimizer = torch.optim.SGD([{"params": convs, "weight_decay": 5e-4},
                                 {"params": others, "weight_decay": 0.0}],
                                lr=0.1, momentum=0.9)  # paper 2's optimiser (spec 2.3)
    loss = F.cross_entropy(model(raw_images(8)), torch.arange(8) % 10)
    assert math.isfinite(loss.item())
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for key, value in after.items():
        assert torch.isfinite(value.float()).all(), key
    for name, _ in model.conv_layers():  # every latent weight tensor moved
        assert not torch.equal(before[f"{name}.weight"], after[f"{name}.weight"]), name
    assert not torch.equal(before["input_bn.weight"], after["input_bn.weight"])
    assert math.isfinite(F.cross_entropy(model(raw_images(8)), torch.arange(8) % 10).item())


def test_bn_recomputation_updates_the_input_bn_only():
    model = srelu_net()
    batches = [raw_images(8, seed) for seed in range(3)]
    assert recompute_bn_statistics(model, batches) == 3
    pixels = torch.cat(batches).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(model.input_bn.running_mean, pixels.mean(dim=1), rtol=1e-4,
                               atol=1e-3)
    assert model.eval()(raw_images(2)).shape == (2, 10)


@pytest.mark.slow
def test_smoke_run_of_the_shifted_relu_net_trains_tracks_and_exports(tmp_path):
    """binwrn-run and binwrn-export as a user runs them (subprocesses): the run finishes with
    paper 2's settings recorded, and its packed file gives the trained model's logits."""
    import subprocess
    import sys
    from pathlib import Path

    from e2e import binwrn_run

    done = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits", "model.norm=shifted_relu")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = done.runs()
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["model.norm"], params["model.temperature"], params["model.input_relu"]) == \
        ("shifted_relu", "40.0", "False")
    assert run.info.run_name == "digits-wrn8-1-1bit-sgdr-srelu-T40-cutout18"
    assert 0.0 <= run.data.metrics["test_final/acc"] <= 1.0
    assert math.isfinite(run.data.metrics["train/loss"])

    exported = subprocess.run(
        [str(Path(sys.executable).with_name("binwrn-export")), run.info.run_id, "--out",
         "m.bwn", "--onnx", "m.onnx", "--no-log"], capture_output=True, text=True,
        cwd=tmp_path, timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "packed max |diff| 0" in exported.stdout  # and ONNX within round-off, or it fails
    assert (tmp_path / "m.bwn").stat().st_size > 74_800 / 8
