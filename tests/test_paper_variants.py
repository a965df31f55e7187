"""Variants the papers and spec 4 name that were not reachable (issue 16, item 4): paper 3's
shipped random orders, paper 1 Appendix B's plain net with its scale, and the final-BN affine
and per-epoch cosine ablations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_export import pixel_images, trained_looking_wrn
from torch.nn import functional as F

from binwrn.configuration.build import binarization_order, build_model, build_schedule_from
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import run_name
from binwrn.configuration.stored import run_config
from binwrn.errors import ConfigError
from binwrn.export.format import decode, encode
from binwrn.export.job import size_only
from binwrn.export.pack import pack_wrn, rebuild_wrn, torch_logits
from binwrn.models import WideResNet
from binwrn.models.layer_order import binarizable_names
from binwrn.train.optimizers import optimizer_groups
from binwrn.train.schedules import SGDR, Cosine

# Spec 3.6, as 1-based layer numbers in forward order.
SPEC_RANDOM = {"p3_vgg5": [2, 5, 1, 3, 4], "p3_vgg9": [3, 8, 1, 5, 6, 9, 2, 4, 7],
               "p3_resnet20": [4, 14, 10, 11, 13, 6, 9, 2, 15, 8, 17, 7, 18, 16, 20, 5, 1, 19,
                               12, 3]}


@pytest.mark.parametrize("preset", sorted(SPEC_RANDOM))
def test_random_official_is_paper_3s_shipped_list(preset: str) -> None:
    cfg = compose([f"experiment={preset}", "iterative.order=random_official"])
    model = build_model(cfg)
    layers = binarizable_names(model)
    order, _ = binarization_order(cfg, model)
    assert list(order) == [layers[n - 1] for n in SPEC_RANDOM[preset]]
    # The same for every seed: the list is the paper's, not a draw.
    other = compose([f"experiment={preset}", "iterative.order=random_official", "seed=1"])
    assert binarization_order(other, build_model(other))[0] == order
    assert run_name(cfg).endswith("-random_official")


@pytest.mark.parametrize("overrides", [["experiment=p3_mlp300"], ["model.depth=8"]])
def test_random_official_without_a_shipped_list_is_refused(overrides) -> None:
    cfg = compose([*overrides, "iterative.order=random_official"])
    with pytest.raises(ConfigError, match="vgg5, vgg9, resnet20 only.*iterative.order=random"):
        binarization_order(cfg, build_model(cfg))


def test_plain_net_has_no_shortcuts_and_appendix_b_scale() -> None:
    cfg = compose(["model=plain", "model.depth=20", "model.width=4", "dataset=cifar100"])
    model = build_model(cfg)
    assert run_name(cfg).startswith("cifar100-plain20-4-1bit")
    # Appendix B / the trained plain-net .mat: 2/sqrt(27) and 2/sqrt(9*64) (spec 1.2.4).
    assert model.conv_in.alpha == pytest.approx(0.3849, abs=1e-4)
    assert model.blocks[0].conv1.alpha == pytest.approx(2 / math.sqrt(9 * 64))
    assert model.blocks[0].conv1.weight.std().item() == pytest.approx(2 / 24, rel=0.05)
    assert all(block.shortcut is None for block in model.blocks)
    # Each block is BN-ReLU-conv twice and nothing added.
    block = model.blocks[3].eval()  # the first block of stage 2: 64 -> 128 channels, stride 2
    x = torch.randn(2, 64, 8, 8)
    h = block.conv1(F.relu(block.bn1(x)))
    assert torch.equal(block(x), block.conv2(F.relu(block.bn2(h))))
    skip = WideResNet(depth=20, width=4, num_classes=100)
    assert sum(p.numel() for p in skip.parameters()) == sum(p.numel() for p in model.parameters())


def test_plain_net_is_refused_by_the_exporter_in_one_sentence() -> None:
    plain = compose(["model=plain", "model.depth=8", "model.width=1"])
    summary, layout = size_only(build_model(plain), run_config(plain))
    assert layout is None and summary.conv_weights == 74_800
    model, kwargs = trained_looking_wrn(skip=False)
    with pytest.raises(ConfigError, match="plain net.*no packed topology"):
        pack_wrn(model, kwargs)
    model, kwargs = trained_looking_wrn(init_gain=4.0)
    with pytest.raises(ConfigError, match="model.init_gain=4.0"):
        pack_wrn(model, kwargs)


def test_final_bn_affine_learns_the_logits_scale_and_packs() -> None:
    cfg = compose(["model.depth=8", "model.width=1", "model.final_bn_affine=true"])
    model = build_model(cfg)
    assert model.bn_out.affine and not model.bn_head.affine
    no_decay = {id(p) for p in optimizer_groups(model, 5e-4)[1]["params"]}
    assert {id(model.bn_out.weight), id(model.bn_out.bias)} <= no_decay
    model, kwargs = trained_looking_wrn(seed=2, final_bn_affine=True)
    packed = decode(encode(pack_wrn(model, kwargs))[0])
    assert packed.header["model"]["final_bn_affine"] is True
    images = pixel_images(4)
    assert np.array_equal(torch_logits(rebuild_wrn(packed), images), torch_logits(model, images))
    paper_header = pack_wrn(*trained_looking_wrn()).header
    assert not {"final_bn_affine", "skip", "init_gain"} & set(paper_header["model"])
    with pytest.raises(ConfigError, match="final_bn_affine=true needs the BN on the logits"):
        WideResNet(depth=8, width=1, norm="shifted_relu", temperature=40.0,
                   final_bn_affine=True)


def test_per_epoch_cosine_holds_each_epoch_at_its_start_value() -> None:
    batch, epoch = SGDR(lr_max=0.1, lr_min=1e-5), SGDR(lr_max=0.1, lr_min=1e-5, per_batch=False)
    steps = [e + (j + 1) / 4 for e in range(7) for j in range(4)]  # 4 batches per epoch
    rates = [epoch.lr(t) for t in steps]
    for e in range(7):
        assert len(set(rates[4 * e:4 * e + 4])) == 1  # one rate per epoch
    starts = rates[::4]
    # Cycles of 2 and 4 epochs: each starts at lr_max ([SZ]); its last epoch stays above
    # lr_min, where the per-batch cosine ends exactly at it.
    assert starts[0] == starts[2] == starts[6] == pytest.approx(0.1)
    assert starts[1] == pytest.approx(1e-5 + 0.5 * (0.1 - 1e-5))
    assert starts[5] == pytest.approx(1e-5 + 0.5 * (0.1 - 1e-5) * (1 + math.cos(math.pi * 3 / 4)))
    assert batch.lr(2.0) == pytest.approx(1e-5) and batch.lr(1.25) != batch.lr(1.5)
    one = Cosine(lr_max=0.1, lr_min=1e-5, epochs=4, per_batch=False)
    assert one.lr(0.25) == one.lr(1.0) == pytest.approx(0.1) and one.lr(4.0) > 1e-5
    cfg = compose(["schedule.per_batch=false"])
    assert build_schedule_from(cfg).per_batch is False
