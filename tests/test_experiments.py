"""Every experiment file composes into a net, a schedule and an optimizer, and keeps its config.

As lightning-hydra-template's tests do, this composes the real YAML under conf/experiment/
(no hand-built configs) and builds what a run builds from it before training: the network,
the learning-rate schedule and the optimizer over the network's parameters. Nothing trains.

`PINNED` holds each experiment's config hash (what tracking uses to skip a finished run and
resume an unfinished one, configuration/identity.py's config_hash) and a digest of its whole
composed, unresolved config, both taken from the tree before issue 20 moved the 32-bit twins
onto their 1-bit files: a change to either would orphan the finished runs of that experiment.
The ImageNet digests changed once, with issue 26's default `dataset.decoder=pil` (torchvision's
decoders are deprecated): a speed-only key that config_hash leaves out, so their hashes stand.
Paper 3's CIFAR-10 presets (p3_vgg5, p3_vgg9, p3_resnet20) changed hash once, with issue 29's
`dataset.val_split=official`: on the official batches they hold out other images than before,
so their earlier runs are not the same experiment.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from binwrn.configuration.build import build_model, build_schedule_from, optimizer_settings
from binwrn.configuration.compose import hydra_compose
from binwrn.configuration.identity import config_hash

EXPERIMENTS = sorted(p.stem for p in
                     (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("*.yaml"))

# experiment: (config_hash, sha256[:16] of the composed config, unresolved, keys sorted)
PINNED = {
    "demo": ("2bb3317cd7cc3464", "5148dd8cff01ab49"),
    "p1_mnist_1bit_20-4": ("e41793b7ee999257", "c023d4fcb8e497e0"),
    "p1_mnist_fp32_20-4": ("9ecb83b357eb2e38", "39429c5ea5abf355"),
    "p1_t1_1bit_20-10": ("b41f151c9c9a7c00", "4d20cbdbf89604c4"),
    "p1_t1_1bit_20-20": ("d5e5cfbb53d0bebc", "d0ed87dcce971ff8"),
    "p1_t1_1bit_20-4": ("8cef7dc7567cd56d", "69646ac836248ca9"),
    "p1_t1_1bit_26-10": ("073fafd7deb41da4", "d51806b343da4d7f"),
    "p1_t1_fp32_20-10": ("4b28a6c2fd562e79", "fe47dcf4f7ef9b7f"),
    "p1_t1_fp32_20-20": ("bc7b4e8e573c645f", "d6160204f705be3a"),
    "p1_t1_fp32_20-4": ("0cbcbeeb10d238fb", "123e71397d113e0d"),
    "p1_t1_fp32_26-10": ("e3a8b6718e0bf64d", "4d26b02e7a802075"),
    "p1_t2_1bit_imagenet32_20-10": ("2d2a3b36d3b90df8", "4d70ac0d656fefd3"),
    "p1_t2_1bit_imagenet32_20-15": ("51c9e5d5c0d84fc1", "d86c85dabbef2506"),
    "p1_t2_1bit_imagenet32_20-4": ("ce4c3875b33b3f46", "05cb8057110d0447"),
    "p1_t2_1bit_imagenet32_26-10": ("902be7416ac5f424", "863cb2d1b5d11d9b"),
    "p1_t2_1bit_imagenet_18-2.5": ("1cc73e12cd31ed72", "f203794e7f9d3b2f"),
    "p1_t2_1bit_svhn_20-4": ("f55035ec042f8735", "12888600666271a5"),
    "p1_t2_fp32_imagenet32_20-10": ("c15613f0d8b4685f", "d13fbea7f8f06f2b"),
    "p1_t2_fp32_imagenet32_20-15": ("25b2a13b871821dc", "2c6913eafe9234df"),
    "p1_t2_fp32_imagenet32_20-4": ("5a8f2043ebc78f8e", "c579414235342d5a"),
    "p1_t2_fp32_imagenet_18-2.5": ("e511af357e3ff9b7", "8246fddf86e10668"),
    "p1_t2_fp32_svhn_20-4": ("13b5e2d6b7214cd2", "370699e2d1202966"),
    "p2_1bit_bn": ("b41f151c9c9a7c00", "4d20cbdbf89604c4"),
    "p2_1bit_srelu": ("65402ca3862f6952", "347e08796c50c341"),
    "p2_fp32_bn": ("4b28a6c2fd562e79", "fe47dcf4f7ef9b7f"),
    "p2_fp32_srelu": ("5ff9189fe6bdd670", "3cc23f6b3a73fad3"),
    "p3_mlp300": ("381ce359ee451d58", "4cf9677d34c4a924"),
    "p3_mlp784": ("7ae79b2689421823", "7bbf1045de2eebac"),
    "p3_resnet20": ("719f8603aa44156d", "7df864eb8d680489"),
    "p3_resnet21": ("8ec9a6762d2ec5c3", "b3e93cdf3ed5de00"),
    "p3_vgg5": ("06b96478fcdfbac5", "d64293e44715ab03"),
    "p3_vgg9": ("f84b59f923e05442", "b49a4a56a84fe0f1"),
    "smoke": ("1f9d7073b6e53469", "e17b84c1852a30e5"),
}


def _digest(cfg) -> str:
    tree = OmegaConf.to_container(cfg, resolve=False)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def test_every_experiment_is_pinned():
    assert set(EXPERIMENTS) == set(PINNED), "pin the new experiment's hash here"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_to_the_config_its_finished_runs_carry(name):
    cfg = hydra_compose([f"experiment={name}"])
    assert (config_hash(cfg), _digest(cfg)) == PINNED[name]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_builds_its_net_schedule_and_optimizer(name):
    cfg = hydra_compose([f"experiment={name}"])
    torch.manual_seed(0)
    model = build_model(cfg)
    schedule = build_schedule_from(cfg)
    settings = optimizer_settings(cfg)
    optimizer = settings.build(model, schedule.lr(0.0))
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in model.parameters() if p.requires_grad}
    assert settings.name == cfg.optim.get("name", "sgd")
    # the schedule starts at the configured peak and fits the epoch budget it is trained for
    assert schedule.lr(0.0) == pytest.approx(cfg.optim.lr)
    assert schedule.mismatch(cfg.trainer.max_epochs) is None
