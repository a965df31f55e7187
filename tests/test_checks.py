"""Config checks before torch: one sentence with a "did you mean", from a process that has
not imported torch, Lightning or MLflow when it prints it (binwrn/configuration/checks.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e import binwrn_run

from binwrn.configuration import checks
from binwrn.configuration import compose as composing
from binwrn.configuration.compose import compose, conf_dir
from binwrn.errors import ConfigError

# Put first on PYTHONPATH, this sitecustomize makes importing torch, Lightning or MLflow an
# error in the binwrn-run process; "import-guard: on" proves it was loaded.
GUARD = '''
import sys
BLOCKED = ("torch", "lightning", "mlflow")
class _Guard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            sys.stderr.write(f"import-guard: blocked {name}\\n")
            raise ImportError(f"import-guard: {name} imported before the error")
        return None
sys.meta_path.insert(0, _Guard())
sys.stderr.write("import-guard: on\\n")
'''

CASES = {  # overrides -> what the one error line must say
    "unknown key": (["model.bit=1"], "did you mean model.bits?"),
    "bits": (["model.bits=2"], "model.bits=2 is not allowed"),
    "missing data": (["dataset=cifar10", "data.root=/nonexistent/c10"],
                     "No cifar10 data under data.root=/nonexistent/c10"),
    "epochs": (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 is not allowed"),
    "seed": (["seed=abc"], "seed=abc is not allowed"),
    "lr": (["optim.lr=abc"], "optim.lr=abc is not allowed"),
    "unknown option": (["dataset=cifar11"], "did you mean dataset=cifar10?"),
    # A multirun's keys are checked for every job up front (its values job by job, so that
    # one bad job fails alone: tests/test_sweep_end_to_end.py).
    "multirun": (["-m", "model.bits=32,1", "schedule=sgdr,cosin"],
                 "job 1 (model.bits=32 schedule=cosin): schedule=cosin is not one of"),
}


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("guard")
    (folder / "sitecustomize.py").write_text(GUARD)
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("name", list(CASES))
def test_error_comes_before_torch(tmp_path: Path, guard: dict, name: str) -> None:
    overrides, expected = CASES[name]
    flags = [o for o in overrides if o.startswith("-")]  # Hydra's flags come first
    out = binwrn_run(tmp_path, *flags, "experiment=smoke", "dataset=digits",
                     *(o for o in overrides if o not in flags), env=guard, timeout=120)
    assert "import-guard: on" in out.stderr  # the guard was active in the process
    assert "import-guard: blocked" not in out.stderr, out.stderr[-2000:]
    assert out.returncode == 2, out.stderr[-2000:]
    error_lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and expected in error_lines[0], out.stderr[-2000:]
    assert "+model" not in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()  # refused before Hydra made a job folder


def test_did_you_mean_keys() -> None:
    cfg = compose(["experiment=demo"])
    keys = composing._keys(cfg)
    groups = composing.group_options(conf_dir())
    assert composing.suggest_key("model.bit", keys, groups)[0] == "model.bits"
    assert composing.suggest_key("lr", keys, groups)[0] == "optim.lr"
    assert composing.suggest_key("datset", keys, groups)[0] == "dataset"
    assert composing.suggest_key("trainer.max_epoch", keys, groups)[0] == "trainer.max_epochs"
    with pytest.raises(ConfigError, match="did you mean schedule=sgdr"):
        compose(["schedule=sgd"])


def test_values_refused_and_accepted() -> None:
    good = compose(["experiment=smoke"])
    checks.check_values(good)
    for overrides, named in [(["data.pad_fill=zeros"], "did you mean zero"),
                             (["model.depth=12"], "model.depth=12"),
                             (["optim=adam", "optim.betas=[0.9]"], "two numbers"),
                             (["trainer.precision=33"], "trainer.precision=33"),
                             (["bn.momentum=0"], "bn.momentum=0"),
                             (["model.norm=shifted_relu", "model.temperature=0"],
                              "model.temperature=0"),
                             (["model.temperature=40"], "only applies to model.norm=shifted"),
                             (["deterministic=yes"], "true or false")]:
        with pytest.raises(ConfigError, match=named):
            checks.check_values(compose(["experiment=smoke", *overrides]))


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (conf_dir() / "experiment")
                                              .glob("*.yaml")))
def test_every_preset_passes(experiment: str) -> None:
    """The rules accept every shipped preset (the data need not be here)."""
    checks.check_values(compose([f"experiment={experiment}"]))


def test_precisions_are_lightnings() -> None:
    """trainer.precision's values are Lightning's own (a new Lightning may add or drop one);
    binwrn's own value lists have one home each (models/rules.py, data/rules.py,
    train/rules.py), which the checks and the constructors both import."""
    from lightning.fabric.connector import _PRECISION_INPUT

    lightning = {str(v) for arg in _PRECISION_INPUT.__args__ for v in arg.__args__}
    assert set(checks.PRECISIONS) - {"auto"} == lightning
