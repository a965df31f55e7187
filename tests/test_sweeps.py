"""Sweep files: expansion into jobs, the shipped sweeps compose, and job files mean what the
overrides say (the end-to-end sweep runs are in test_sweep_end_to_end.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from binwrn.configuration.compose import compose, conf_dir, sweeps_dir
from binwrn.configuration.identity import config_hash
from binwrn.errors import ConfigError
from binwrn.sweeps.driver import _duplicates
from binwrn.sweeps.plan import GROUP, write_plan
from binwrn.sweeps.spec import load_sweep

SHIPPED = sorted(p.stem for p in sweeps_dir().glob("*.yaml"))


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "s.yaml"
    path.write_text(text)
    return path


def _composed(tmp: Path, spec, smoke: bool = False) -> dict:
    jobs = spec.jobs()
    plan = write_plan(jobs, tmp / "plan", conf_dir(), smoke)
    extra = spec.smoke if smoke else []
    return {j.job_id: compose([f"+{GROUP}={j.job_id}", f"hydra.searchpath=[file://{plan}]",
                               *extra]) for j in jobs}


def test_blocks_and_seeds_expand_in_file_order(tmp_path):
    spec = load_sweep(str(_write(tmp_path, """
name: t
overrides: [dataset=digits]
blocks:
  - overrides: [model.width=2]
    grid: {model.bits: [32, 1]}
  - grid: {schedule: [step]}
seeds: [0, 5]
""")), tmp_path)
    jobs = spec.jobs()
    assert [j.job_id for j in jobs] == [f"job_{i:03d}" for i in range(6)]
    assert [j.labels for j in jobs] == [
        {"model.width": 2, "model.bits": 32, "seed": 0},
        {"model.width": 2, "model.bits": 32, "seed": 5},
        {"model.width": 2, "model.bits": 1, "seed": 0},
        {"model.width": 2, "model.bits": 1, "seed": 5},
        {"schedule": "step", "seed": 0},
        {"schedule": "step", "seed": 5},
    ]
    assert jobs[3].overrides == ["dataset=digits", "model.width=2", "model.bits=1", "seed=5"]


@pytest.mark.parametrize("body, complaint", [
    ("name: t\ngrid: {model.bits: [1]}\nblocks: []\n", "exactly one of grid or blocks"),
    ("name: t\ngrid: {model.bits: []}\n", "at least one value"),
    ("name: t\ngrid: {model.bits: [1]}\nreport: {kind: pie}\n", "report.kind=pie"),
    ("name: t\ngrid: {model.bits: [1]}\nsmoke: [nonsense]\n", "key=value"),
    ("name: t\ngird: {model.bits: [1]}\n", "unknown keys gird"),
    ("name: t\ngrid: {model.bits: [1]}\nseeds: [a]\n", "seeds"),
    ("[1, 2", "not valid YAML"),
])
def test_bad_sweep_files_get_one_sentence(tmp_path, body, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load_sweep(str(_write(tmp_path, body)), tmp_path)


# Each shipped sweep's SMOKE=1 overrides, as written out in every file before issue 20 gave
# the WRN sweeps one shared list (sweeps/shared/smoke.yaml): a smoke job still composes as
# it did, so its runs keep their config hashes.
_WRN_DIGITS = ["dataset=digits", "model.depth=8", "model.width=1", "data.train_limit=300",
               "data.test_limit=200", "data.batch_size=50", "trainer.max_epochs=2",
               "tracking.system_metrics_interval=0"]
_P3_DIGITS = ["dataset=digits", "data.train_limit=300", "data.val_size=100",
              "data.test_limit=200", "data.batch_size=50", "trainer.max_epochs=2",
              "tracking.system_metrics_interval=0"]
SMOKE = {
    **dict.fromkeys(("p1_fig6_ablation", "p1_implementation", "p1_precision", "p1_seeds",
                     "p1_table1", "p2_grid"), _WRN_DIGITS),
    "p1_convergence": [o.replace("max_epochs=2", "max_epochs=6") for o in _WRN_DIGITS],
    "p1_table2": [o for o in _WRN_DIGITS if o != "model.depth=8"],
    "p3_orders": [*_P3_DIGITS[:5], "trainer.max_epochs=3", "iterative.epochs_per_layer=1",
                  _P3_DIGITS[-1]],
    "p3_sensitivity": _P3_DIGITS,
    "p3_imagenet": [*_P3_DIGITS[:2], *_P3_DIGITS[3:5], "trainer.max_epochs=3",
                    "iterative.epochs_per_layer=1", _P3_DIGITS[-1]],
}


def test_every_shipped_sweep_keeps_its_smoke_overrides():
    assert {name: load_sweep(name, sweeps_dir()).smoke for name in SHIPPED} == SMOKE


def test_a_shared_smoke_list_takes_later_values_in_place_and_new_keys_at_the_end(tmp_path):
    path = _write(tmp_path, "name: t\ngrid: {model.bits: [1]}\n"
                            "smoke: [wrn_digits, model.width=2, data.val_size=10]\n")
    smoke = load_sweep(str(path), sweeps_dir()).smoke
    assert smoke == [o.replace("width=1", "width=2") for o in _WRN_DIGITS] + ["data.val_size=10"]


def test_an_unknown_shared_smoke_list_names_the_known_ones(tmp_path):
    path = _write(tmp_path, "name: t\ngrid: {model.bits: [1]}\nsmoke: [wrn_digit]\n")
    with pytest.raises(ConfigError, match="'wrn_digit' is neither key=value nor a list of "
                                          "shared/smoke.yaml \\(wrn_digits\\)"):
        load_sweep(str(path), sweeps_dir())


def test_unknown_sweep_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="p1_fig6_ablation"):
        load_sweep("p1_nothing", sweeps_dir())


def test_job_files_put_group_choices_in_the_defaults_list(tmp_path):
    spec = load_sweep(str(_write(tmp_path, """
name: t
overrides: [dataset=digits, schedule.lr_min=0.001]
grid: {schedule: [step], bn: [learned], model.bits: [32]}
""")), tmp_path)
    write_plan(spec.jobs(), tmp_path / "plan", conf_dir(), smoke=False)
    body = yaml.safe_load((tmp_path / "plan" / GROUP / "job_000.yaml").read_text())
    assert body["defaults"] == [{"override /dataset": "digits"}, {"override /schedule": "step"},
                                {"override /bn": "learned"}]
    assert body["model"] == {"bits": 32} and body["sweep"]["job"] == "job_000"
    (cfg,) = _composed(tmp_path / "c", spec).values()
    assert (cfg.dataset.name, cfg.schedule.name, cfg.bn.learn_affine) == ("digits", "step", True)
    assert cfg.schedule.lr_min == 0.001 and cfg.model.bits == 32


@functools.cache
def _preset_target(experiment: str) -> str:
    return compose([f"experiment={experiment}"]).model._target_


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_sweep_composes_with_its_header(name, tmp_path):
    spec = load_sweep(name, sweeps_dir())
    assert spec.text.startswith("#") and "Budget" in spec.text  # the header the issue asks for
    composed = _composed(tmp_path, spec)
    for job in spec.jobs():
        cfg = composed[job.job_id]
        for key, value in job.labels.items():
            if key == "experiment":  # a preset: alone, the job is what `binwrn-run experiment=`
                assert cfg.model._target_ == _preset_target(value), job.job_id  # runs
                if set(job.labels) == {"experiment"}:
                    assert config_hash(cfg) == config_hash(compose([f"experiment={value}"]))
                continue
            if isinstance(value, str) and value.startswith("["):  # a list, e.g. a layer order
                value = yaml.safe_load(value)
            if key in ("dataset", "schedule", "bn"):  # group choices show in their name key
                key = {"dataset": "dataset.name", "schedule": "schedule.name"}.get(key, key)
                if key == "bn":
                    key, value = "bn.learn_affine", value == "learned"
            assert OmegaConf.select(cfg, key) == value, (job.job_id, key)


def test_table1_has_the_papers_26_rows_with_their_epochs(tmp_path):
    spec = load_sweep("p1_table1", sweeps_dir())
    composed = _composed(tmp_path, spec)
    rows = {(c.model.bits, c.model.depth, c.model.width, c.dataset.name, c.data.cutout):
            c.trainer.max_epochs for c in composed.values()}
    assert len(rows) == 26
    assert rows[(1, 20, 10, "cifar10", 18)] == 254 and rows[(32, 20, 4, "cifar100", 0)] == 126
    assert rows[(1, 20, 20, "cifar100", 0)] == 126 and (1, 20, 20, "cifar10", 0) not in rows


def test_fig6_ablation_is_the_papers_8_runs(tmp_path):
    composed = _composed(tmp_path, load_sweep("p1_fig6_ablation", sweeps_dir()))
    combos = {(c.model.bits, c.schedule.name, c.bn.learn_affine) for c in composed.values()}
    assert len(combos) == 8
    for c in composed.values():
        assert (c.dataset.name, c.model.depth, c.model.width, c.data.cutout) == \
            ("cifar100", 20, 4, 0)


def test_implementation_ablation_trains_its_shared_baseline_once(tmp_path):
    spec = load_sweep("p1_implementation", sweeps_dir())
    composed = _composed(tmp_path, spec)
    hashes = {job_id: config_hash(cfg) for job_id, cfg in composed.items()}
    duplicates = _duplicates(spec.jobs(), hashes)
    assert len(set(hashes.values())) == 13  # 1 baseline + 12 variants
    assert len(duplicates) == 9 and set(duplicates.values()) == {"job_000"}
    variants = {(c.model.final_bn_affine, c.schedule.per_batch) for c in composed.values()}
    assert variants == {(False, True), (True, True), (False, False)}  # spec 4 item 6 (c), (j)


def test_smoke_rows_stay_distinct_runs(tmp_path):
    spec = load_sweep("p1_table1", sweeps_dir())
    composed = _composed(tmp_path, spec, smoke=True)
    assert {c.model.depth for c in composed.values()} == {8}
    assert len({config_hash(c) for c in composed.values()}) == 26
    full = _composed(tmp_path / "full", spec)
    assert not {config_hash(c) for c in composed.values()} & \
        {config_hash(c) for c in full.values()}


def test_p2_grid_is_the_papers_2x2_per_data_set_plus_t_and_width_axes(tmp_path):
    spec = load_sweep("p2_grid", sweeps_dir())
    composed = _composed(tmp_path, spec)
    assert len(composed) == 40
    hashes = {job_id: config_hash(cfg) for job_id, cfg in composed.items()}
    assert len(set(hashes.values())) == 28  # the axes' paper-T and k=10 rows are the grid's
    runs = {}
    for c in composed.values():
        recipe = (c.schedule.name, c.trainer.max_epochs, c.schedule.get("epochs"))
        # BN rows keep paper 1's recipe; shifted-ReLU rows one 300-epoch cosine to 1e-5.
        assert recipe == {"batchnorm": ("sgdr", 254, None),
                          "shifted_relu": ("cosine", 300, 300)}[c.model.norm]
        assert (c.model.depth, c.data.cutout, c.schedule.lr_min) == (20, 18, 1e-5)
        runs[(c.dataset.name, c.model.bits, c.model.norm, c.model.width,
              c.model.temperature)] = c
    paper_t = {("cifar10", 32): 80.0, ("cifar10", 1): 40.0, ("cifar100", 32): 25.0,
               ("cifar100", 1): 25.0}
    for (dataset, bits), t in paper_t.items():
        assert (dataset, bits, "batchnorm", 10, None) in runs
        assert (dataset, bits, "batchnorm", 4, None) in runs
        assert (dataset, bits, "shifted_relu", 4, t) in runs
        assert {key[4] for key in runs if key[:4] == (dataset, bits, "shifted_relu", 10)} == \
            {10.0, 25.0, 40.0, 80.0}
    assert len(runs) == 28


def test_p2_grid_smoke_keeps_each_jobs_norm_and_temperature(tmp_path):
    spec = load_sweep("p2_grid", sweeps_dir())
    full, smoke = _composed(tmp_path / "full", spec), _composed(tmp_path / "smoke", spec, True)
    for job_id, cfg in smoke.items():
        assert (cfg.model.depth, cfg.model.width, cfg.dataset.name) == (8, 1, "digits")
        assert cfg.model.norm == full[job_id].model.norm
        if "model.temperature" in spec.jobs()[int(job_id[4:])].labels:
            assert cfg.model.temperature == full[job_id].model.temperature


def test_jobs_the_launcher_never_started_are_not_run_not_failed(tmp_path):
    """job_000 finished, job_001 started and died without an outcome (failed), job_002 was
    never started (Hydra made no folder for it): not run; job_003 repeats job_002's config."""
    from binwrn.sweeps.driver import NOT_RUN, _settle
    from binwrn.sweeps.spec import Job

    jobs = [Job(f"job_00{i}", {"i": i}, []) for i in range(4)]
    hashes = {"job_000": "a", "job_001": "b", "job_002": "c", "job_003": "c"}
    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    reported = {"job_000": {"status": "finished", "run_id": "r0", "reason": None,
                            "test_error_pct": 5.0}}
    outcomes = _settle(jobs, hashes, {}, {"job_003": "job_002"}, reported, 1, tmp_path)
    assert [o.status for o in outcomes] == ["finished", "failed", NOT_RUN, NOT_RUN]
    assert "never started" in outcomes[2].reason
    assert "left no outcome" in outcomes[1].reason
