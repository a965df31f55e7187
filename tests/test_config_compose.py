"""The real Hydra configs under conf/: defaults are the paper's headline, every option composes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from binwrn.configuration.build import build_model, build_schedule_from
from binwrn.configuration.identity import config_hash, curated_params
from binwrn.configuration.prepare import prepare
from binwrn.models import WideResNet
from binwrn.train.schedules import SGDR, StepDecay

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("dataset", "model", "bn", "schedule", "optim", "trainer", "tracking", "experiment")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_is_paper_headline():
    cfg = _compose()
    assert cfg.dataset.name == "cifar10"
    assert cfg.dataset.num_classes == 10
    assert cfg.model.depth == 20 and cfg.model.width == 10
    assert cfg.model.bits == 1
    assert cfg.model.first_last_fp32 is False
    assert cfg.model.scale == "he" and cfg.model.grad == "pass_through"
    assert cfg.model.num_classes == 10
    assert cfg.bn.learn_affine is False
    assert cfg.model.bn_affine is False
    assert cfg.schedule.name == "sgdr"
    assert cfg.schedule.lr_min == 1e-5
    assert cfg.schedule.first_cycle == 2 and cfg.schedule.cycle_mult == 2
    assert cfg.trainer.max_epochs == 254
    assert cfg.data.cutout == 18
    assert cfg.data.batch_size == 125
    assert cfg.data.pad == 4 and cfg.data.pad_fill == "random"
    assert cfg.data.flip is True
    assert cfg.optim.lr == 0.1
    assert cfg.optim.weight_decay == 5e-4
    assert cfg.optim.momentum == 0.9
    assert cfg.optim.nesterov is False
    assert cfg.model.norm == "batchnorm" and cfg.model.input_relu is True  # paper 1's net


def test_groups_have_options():
    for group in GROUPS:
        assert _options(group), group
    assert {"cifar10", "cifar100", "digits"} <= set(_options("dataset"))
    assert {"sgdr", "step", "cosine"} <= set(_options("schedule"))
    assert {"smoke", "demo"} <= set(_options("experiment"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)]
)
def test_every_option_composes_and_resolves(group, option):
    cfg = _compose(f"{group}={option}")
    tree = OmegaConf.to_container(cfg, resolve=True)
    assert tree["model"]["num_classes"] == tree["dataset"]["num_classes"]
    assert tree["model"]["bn_affine"] == tree["bn"]["learn_affine"]
    if group != "experiment":
        assert tree[group] is not None


@pytest.mark.parametrize(
    "path", sorted((CONF / "experiment").glob("*.yaml")), ids=lambda p: p.stem
)
def test_experiment_header_names_paper(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            header.append(line)
    assert header, f"{path.name} has no header comment"
    assert "paper" in " ".join(header).lower()


@pytest.mark.parametrize(
    ("experiment", "depth", "width", "bits", "epochs"),
    [("p1_t1_1bit_20-10", 20, 10, 1, 254), ("p1_t1_fp32_20-4", 20, 4, 32, 126),
     ("p1_t1_1bit_26-10", 26, 10, 1, 254)],
)
def test_paper_experiments(experiment, depth, width, bits, epochs):
    cfg = _compose(f"experiment={experiment}")
    assert (cfg.model.depth, cfg.model.width, cfg.model.bits) == (depth, width, bits)
    assert cfg.trainer.max_epochs == epochs


def test_20_20_experiment_is_cifar100_without_cutout():
    cfg = _compose("experiment=p1_t1_1bit_20-20")
    assert cfg.dataset.name == "cifar100" and cfg.model.num_classes == 100
    assert cfg.data.cutout == 0


def test_bn_learned():
    cfg = _compose("bn=learned")
    assert cfg.bn.learn_affine is True
    assert cfg.model.bn_affine is True
    assert cfg.bn.recompute_stats is True  # inherited from bn/paper


def test_schedule_step():
    cfg = _compose("schedule=step", "experiment=smoke")
    assert list(cfg.schedule.milestones) == [85, 170]
    schedule = build_schedule_from(cfg)
    assert isinstance(schedule, StepDecay)
    assert schedule.lr(86) == pytest.approx(0.01)


def test_schedule_cosine_follows_max_epochs():
    cfg = _compose("schedule=cosine", "trainer.max_epochs=30")
    assert cfg.schedule.epochs == 30


@pytest.mark.parametrize("bits", [1, 32])
def test_build_model_from_smoke_config(bits):
    cfg = _compose("experiment=smoke", f"model.bits={bits}", "bn=learned")
    model = build_model(cfg)
    assert isinstance(model, WideResNet)
    convs = model.conv_layers()
    assert len(convs) == 8
    assert all(c.bits == bits for _, c in convs)
    assert model.conv_out.out_channels == 10
    assert model.bn_head.affine is True


def test_build_model_for_cifar100_smoke():
    cfg = _compose("experiment=smoke", "dataset=cifar100")
    assert build_model(cfg).conv_out.out_channels == 100


def test_build_model_bad_value_raises_config_error():
    from binwrn.errors import ConfigError

    cfg = _compose("experiment=smoke", "model.depth=21")
    with pytest.raises(ConfigError, match="depth=21"):
        build_model(cfg)


def test_default_schedule_is_sgdr_with_official_lr_min():
    schedule = build_schedule_from(_compose("experiment=smoke"))
    assert isinstance(schedule, SGDR)
    assert schedule.lr_min == 1e-5 and schedule.lr_max == 0.1


def test_prepare_builds_everything_a_run_needs(tmp_path):
    cfg = _compose("experiment=smoke", "dataset=digits", "data.cutout=18",
                   f"tracking.uri=sqlite:///{tmp_path}/x.db")
    prepared = prepare(cfg)
    assert (len(prepared.train), len(prepared.test)) == (300, 200)
    assert prepared.augment.cutout == 18 and prepared.augment.flip is False
    assert prepared.tracking.uri == f"sqlite:///{tmp_path}/x.db"


def test_bad_input_is_refused_before_lightning_and_mlflow_load():
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from binwrn.configuration.prepare import prepare\n"
        "from binwrn.errors import ConfigError\n"
        f"with initialize_config_dir(config_dir={str(CONF)!r}, version_base='1.3'):\n"
        "    cfg = compose('config', overrides=['dataset=digits', 'data.batch_size=9999'])\n"
        "try:\n"
        "    prepare(cfg)\n"
        "except ConfigError:\n"
        "    heavy = [m for m in ('lightning', 'mlflow') if m in sys.modules]\n"
        "    sys.exit(3 if heavy else 0)\n"
        "sys.exit(4)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_config_hash():
    base = config_hash(_compose())
    assert base == config_hash(_compose())
    assert config_hash(_compose("model.bits=32")) != base
    assert config_hash(_compose("data.cutout=0")) != base
    assert config_hash(_compose("tracking.uri=sqlite:///elsewhere.db")) == base
    assert config_hash(_compose("data.root=/somewhere/else")) == base


def test_default_config_keeps_the_hash_its_stored_runs_carry():
    """Pinned: a key added later must leave this hash alone (PAPER1_VALUES), or every store's
    finished runs stop being skipped and unfinished ones stop resuming.

    Issue 16 changed it on purpose: the default precision became the paper's 32-true, and
    stored runs of `auto` trained in bf16 wherever a GPU had it, so they are not runs of the
    new default. Asked for explicitly, `auto` still finds them (and resumes them). The demo
    preset also became deterministic=true (2026-12-06): a different training, a new hash."""
    assert config_hash(_compose()) == "b41f151c9c9a7c00"
    assert config_hash(_compose("experiment=demo")) == "2bb3317cd7cc3464"
    assert config_hash(_compose("trainer.precision=auto")) == "bb26442466369516"
    assert config_hash(_compose("experiment=demo", "trainer.precision=auto",
                                "deterministic=false")) == "755787bc208c435a"
    # The keys issue 16 added keep those hashes at their paper values.
    for key, value in (("trainer.tf32", "false"), ("model.skip", "true"),
                       ("model.init_gain", "2.0"), ("model.final_bn_affine", "false"),
                       ("schedule.per_batch", "true")):
        assert config_hash(_compose("trainer.precision=auto", f"{key}={value}")) == \
            "bb26442466369516", key


def test_curated_params():
    cfg = _compose()
    params = curated_params(cfg)
    required = ["dataset.name", "model.depth", "model.width", "model.bits", "bn.learn_affine",
                "schedule.name", "trainer.max_epochs", "optim.lr", "data.cutout"]
    for key in required:
        assert key in params, key
    assert params["dataset.name"] == "cifar10"
    assert params["model.depth"] == 20 and params["model.width"] == 10
    assert params["model.bits"] == 1
    assert params["bn.learn_affine"] is False
    assert params["schedule.name"] == "sgdr"
    assert params["trainer.max_epochs"] == 254
    assert params["optim.lr"] == 0.1
    assert params["data.cutout"] == 18
    assert params["model.norm"] == "batchnorm" and "model.temperature" not in params
    step = curated_params(_compose("schedule=step"))
    assert step["schedule.milestones"] == [85, 170]
