"""The paper's arithmetic by default (issue 16, item 2): every preset and every sweep job
trains in fp32 (`32-true`, TF32 off) unless it asks for bf16 by name, as the precision sweep
does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from binwrn.configuration.compose import compose, conf_dir, sweeps_dir
from binwrn.configuration.identity import config_hash
from binwrn.configuration.trainer import trainer_args
from binwrn.errors import ConfigError
from binwrn.sweeps.plan import GROUP, write_plan
from binwrn.sweeps.spec import load_sweep
from binwrn.train.fast_path import set_tf32
from binwrn.train.fit import make_trainer

PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in sweeps_dir().glob("*.yaml"))


def _jobs(name: str, tmp: Path) -> dict:
    spec = load_sweep(name, sweeps_dir())
    jobs = spec.jobs()
    plan = write_plan(jobs, tmp / "plan", conf_dir(), False)
    return {j.job_id: (j, compose([f"+{GROUP}={j.job_id}", f"hydra.searchpath=[file://{plan}]"]))
            for j in jobs}


def test_the_default_is_fp32_without_tf32() -> None:
    cfg = compose([])
    assert cfg.trainer.precision == "32-true" and cfg.trainer.tf32 is False


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_in_the_papers_arithmetic(preset: str) -> None:
    cfg = compose([f"experiment={preset}"])
    assert (cfg.trainer.precision, cfg.trainer.tf32) == ("32-true", False)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_job_trains_in_fp32_unless_it_names_bf16(name: str, tmp_path) -> None:
    for job, cfg in _jobs(name, tmp_path).values():
        asked = job.labels.get("trainer.precision", "32-true")
        assert cfg.trainer.precision == asked and cfg.trainer.tf32 is False, job.job_id


def test_the_precision_sweep_is_fp32_against_bf16_for_both_weights_and_two_seeds(tmp_path):
    jobs = _jobs("p1_precision", tmp_path)
    cells = {(c.trainer.precision, c.model.bits, c.seed) for _, c in jobs.values()}
    assert cells == {(p, b, s) for p in ("32-true", "bf16-mixed") for b in (1, 32)
                     for s in (0, 1)}
    for _, cfg in jobs.values():
        assert (cfg.dataset.name, cfg.model.depth, cfg.model.width, cfg.data.cutout,
                cfg.trainer.max_epochs, cfg.schedule.name) == ("cifar100", 20, 4, 0, 126, "sgdr")
    # Its fp32 jobs of seed 0 are Table 1's C100+ 20-4 rows: one run serves both sweeps.
    table1 = {(c.model.bits, c.model.width, c.dataset.name, c.data.cutout): config_hash(c)
              for _, c in _jobs("p1_table1", tmp_path / "t1").values()}
    for _, cfg in jobs.values():
        if cfg.trainer.precision == "32-true" and cfg.seed == 0:
            assert config_hash(cfg) == table1[(cfg.model.bits, 4, "cifar100", 0)]


def test_tf32_is_set_for_the_run_and_checked(tmp_path) -> None:
    try:
        make_trainer(trainer_args(compose(["trainer.tf32=true", "trainer.accelerator=cpu"])),
                     [], tmp_path, progress=False)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        make_trainer(trainer_args(compose(["trainer.accelerator=cpu"])), [], tmp_path,
                     progress=False)
        assert not torch.backends.cudnn.allow_tf32  # PyTorch's own default is True
        assert not torch.backends.cuda.matmul.allow_tf32
        with pytest.raises(ConfigError, match="trainer.tf32=sometimes"):
            trainer_args(compose(["trainer.tf32=sometimes", "trainer.accelerator=cpu"]))
    finally:
        set_tf32(True)  # leave the process as PyTorch starts it
        torch.backends.cuda.matmul.allow_tf32 = False
    assert config_hash(compose(["trainer.tf32=true"])) != config_hash(compose([]))
