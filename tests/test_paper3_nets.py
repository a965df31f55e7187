"""Paper 3's networks (spec 3.4) from the real presets: layers, binarizer, a training step."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from binwrn.configuration.build import build_model, optimizer_settings
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash, curated_params, net_name, run_name
from binwrn.configuration.stored import run_config
from binwrn.errors import ConfigError
from binwrn.export.source import Source
from binwrn.models import BINARY_LAYERS, MLP, BinaryLinear, CifarResNet
from binwrn.models.layer_order import binarizable_names, set_binary_layers
from binwrn.models.resnet import OptionAShortcut
from binwrn.train.optimizers import optimizer_groups

RESNET20 = ["conv_in", *(f"blocks.{b}.conv{c}" for b in range(9) for c in (1, 2)), "fc"]
# preset -> (its binarizable layers in forward order: paper 3's 1..L, weights, input shape)
PRESETS = {
    "p3_mlp300": (["fc1", "fc2", "fc3"], 266_200, (1, 28, 28)),
    "p3_mlp784": (["fc1", "fc2", "fc3"], 1_237_152, (1, 28, 28)),
    "p3_vgg5": (["conv1", "conv2", "fc3", "fc4", "fc5"], 4_300_992, (3, 32, 32)),
    "p3_vgg9": ([*(f"conv{i}" for i in range(1, 7)), "fc7", "fc8", "fc9"], 2_261_184,
                (3, 32, 32)),
    "p3_resnet20": (RESNET20, 268_336, (3, 32, 32)),  # 269,722 parameters with BN and bias
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_network_composes_and_trains_a_step(preset: str) -> None:
    layers, weights, shape = PRESETS[preset]
    cfg = compose([f"experiment={preset}"])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert binarizable_names(model) == layers
    binary = [m for m in model.modules() if isinstance(m, BINARY_LAYERS)]
    assert sum(m.weight.numel() for m in binary) == weights
    # Paper 3's binarizer: every weight exactly +/-1 (spec 3.2).
    assert all(set(m.effective_weight().unique().tolist()) == {-1.0, 1.0} for m in binary)
    images = torch.randint(0, 256, (8, *shape)).float()
    labels = torch.arange(8) % 10
    optimizer = optimizer_settings(cfg).build(model, cfg.optim.lr)
    before = [m.weight.detach().clone() for m in binary]
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(b, m.weight) for b, m in zip(before, binary, strict=True))
    assert run_name(cfg).startswith(f"{cfg.dataset.name}-{net_name(cfg.model)}-1bit-")


def test_the_binary_linear_layer_is_sign_forward_and_identity_backward() -> None:
    torch.manual_seed(1)
    layer = BinaryLinear(6, 4, scale="none")
    x = torch.randn(5, 6)
    out = layer(x)
    assert torch.allclose(out, x @ torch.sign(layer.weight).T + layer.bias)
    out.sum().backward()
    # identity straight-through: the gradient at sign(W), unclipped, unscaled
    assert torch.allclose(layer.weight.grad, torch.ones(5, 4).T @ x)
    he = BinaryLinear(8, 3, scale="he")
    assert torch.equal(he.effective_weight(), torch.sign(he.weight) * (2 / 8) ** 0.5)
    fp = BinaryLinear(8, 3, bits=32)
    assert torch.equal(fp.effective_weight(), fp.weight)


def test_paper1_scaled_sign_works_inside_the_progressive_schedule() -> None:
    cfg = compose(["experiment=p3_vgg5", "model.scale=he"])
    model = build_model(cfg)
    set_binary_layers(model, {"fc4"})
    assert torch.equal(model.fc4.effective_weight(),
                       torch.sign(model.fc4.weight) * model.fc4.alpha)
    assert torch.equal(model.fc3.effective_weight(), model.fc3.weight)  # still fp32
    assert model.fc4.alpha == pytest.approx((2 / 256) ** 0.5)


def test_option_a_shortcut_subsamples_and_pads_zero_channels_on_both_sides() -> None:
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    out = OptionAShortcut(16, 32)(x)
    assert out.shape == (2, 32, 2, 2)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_the_input_is_normalised_as_torchvisions_to_tensor_and_normalize() -> None:
    from torchvision.transforms import functional as tv

    model = MLP(hidden=[5], in_channels=1, image_size=4, input_mean=[0.1307],
                input_std=[0.3081])
    pixels = torch.randint(0, 256, (1, 4, 4), dtype=torch.uint8)
    expected = tv.normalize(pixels.float() / 255, [0.1307], [0.3081])
    assert torch.allclose(model.input_norm(pixels.float()[None]), expected[None], atol=1e-6)
    with pytest.raises(ConfigError, match="one number per input channel"):
        MLP(in_channels=3, input_mean=[0.5], input_std=[0.5])


def test_weight_decay_scopes() -> None:
    model = CifarResNet(input_mean=[0.5] * 3, input_std=[0.5] * 3)
    weights, other = optimizer_groups(model, 1e-4)
    layer_weights = {id(m.weight) for m in model.modules() if isinstance(m, BINARY_LAYERS)}
    assert {id(p) for p in weights["params"]} == layer_weights
    assert id(model.fc.bias) in {id(p) for p in other["params"]} and other["weight_decay"] == 0
    (everything,) = optimizer_groups(model, 1e-4, "all")  # paper 3's ResNet-20
    assert len(everything["params"]) == len(list(model.parameters()))
    adam = optimizer_settings(compose(["optim=adam"])).build(model, 0.1)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.9, 0.999)


def test_paper1_configs_keep_their_hash_name_and_params() -> None:
    default = compose([])
    # as before paper 3's nets; issue 16 made 32-true the default precision, a new hash
    assert config_hash(compose(["trainer.precision=auto"])) == "bb26442466369516"
    assert config_hash(default) == "b41f151c9c9a7c00"
    assert run_name(default) == "cifar10-wrn20-10-1bit-sgdr-bn-fixed-cutout18"
    params = curated_params(default)
    assert not {"optim.name", "optim.decay_scope", "data.val_size"} & set(params)
    p3 = curated_params(compose(["experiment=p3_resnet20"]))
    assert (p3["optim.decay_scope"], p3["data.val_size"]) == ("all", 5000)
    assert curated_params(compose(["experiment=p3_mlp300"]))["model.hidden"] == [300, 100]


@pytest.mark.parametrize("overrides, words", [
    (["model=vgg", "model.depth=7"], "model.depth=7 is not a VGG of paper 3"),
    (["model=resnet20", "model.depth=21"], "model.depth=21 is not a CIFAR ResNet depth"),
    (["model=mlp", "model.hidden=[]"], "model.hidden=\\[\\] is not allowed"),
    (["model=mlp", "model.init=xavier"], "model.init=xavier is not supported"),
    (["optim=adam", "optim.name=rmsprop"], "optim.name=rmsprop is not supported"),
])
def test_bad_network_settings_get_one_sentence(overrides, words) -> None:
    with pytest.raises(ConfigError, match=words):
        cfg = compose(overrides)
        build_model(cfg)
        optimizer_settings(cfg)


def test_the_exporter_refuses_paper3_nets_in_one_sentence() -> None:
    source = Source(run_config(compose(["model=mlp"])), {}, "run x")
    with pytest.raises(ConfigError, match="resnet18_wide only; binwrn.models.MLP"):
        source.model_kwargs()
    wrn = Source(run_config(compose(["experiment=smoke"])), {}, "run y").model_kwargs()
    assert "label" not in wrn and wrn["depth"] == 8
