"""Bad input across every console script (issue 27): each command gets one sentence.

Every case is a real command in a folder of its own, with the files it needs written there
(a store that is not a database, an empty config, a checkpoint that is not one, a valid
`.bwn`). The outcome of each is one of: one sentence (a non-zero exit, no traceback, one
`error:` line holding the case's words), traceback, hang (no answer in 60 s) or silent wrong
(exit 0). The suite passes when all are one sentence; `docs/reliability.md` lists them.
Commands run four at a time: most of their seconds are imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers_untrusted import valid_bwn

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LONG = "a" * 3000
RUN = ("binwrn-run", "experiment=smoke", "dataset=digits")


def _setup(folder: Path) -> None:
    """The files the cases name, under `folder`."""
    (folder / "notdb.db").write_text("these are notes, not a database\n")
    (folder / "empty.yaml").write_text("")
    (folder / "list.yaml").write_text("- 1\n- 2\n")
    (folder / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    (folder / "good.bwn").write_bytes(valid_bwn())
    (folder / "truncated.bwn").write_bytes(valid_bwn()[:200])
    (folder / "a_file").write_text("")
    (folder / "sweep.yaml").write_text("name: s\ngrid: {model.bits: [1, 3]}\n")
    (folder / "bad_sweep.yaml").write_text("name: [unclosed\n")


# (command, words the one error line must hold)
CASES: list[tuple[tuple[str, ...], str]] = [
    # binwrn-run: numbers out of range, wrong types, bad text (issue 27 items 3, 4)
    ((*RUN, "seed=99999999999999999999"), "seed=99999999999999999999"),
    ((*RUN, "seed=-1"), "seed=-1"),
    ((*RUN, "seed=1.5"), "seed=1.5"),
    ((*RUN, "trainer.max_epochs=100000000"), "trainer.max_epochs=100000000"),
    ((*RUN, "trainer.max_epochs=99999999999999999999999"), "trainer.max_epochs="),
    ((*RUN, "trainer.max_epochs=0"), "trainer.max_epochs=0"),
    ((*RUN, "trainer.max_epochs=abc"), "trainer.max_epochs=abc"),
    ((*RUN, "model.width=100000"), "weights"),
    ((*RUN, "model.width=99999999999999999999"), "model.width="),
    ((*RUN, "model.depth=100000"), "model.depth=100000"),
    ((*RUN, "model.depth=abc"), "model.depth=abc"),
    ((*RUN, "model.num_classes=-5"), "model.num_classes=-5"),
    ((*RUN, "model.in_channels=0"), "model.in_channels=0"),
    ((*RUN, "model._target_=os.system"), "model._target_=os.system"),
    ((*RUN, "model.bits=2"), "model.bits=2"),
    ((*RUN, "model.scale=sign"), "model.scale=sign"),
    ((*RUN, "model.norm=layernorm"), "model.norm=layernorm"),
    ((*RUN, "model.temperature=5"), "model.temperature=5"),
    ((*RUN, "dataset.name=imagenette"), "dataset.name=imagenette"),
    ((*RUN, "dataset.num_classes=99999999999999999999"), "dataset.num_classes="),
    ((*RUN, "dataset.channels=-1"), "dataset.channels=-1"),
    ((*RUN, "data.batch_size=1"), "data.batch_size=1"),
    ((*RUN, "data.batch_size=5000"), "data.batch_size=5000"),
    ((*RUN, "data.pad=100000"), "data.pad=100000"),
    ((*RUN, "data.cutout=-1"), "data.cutout=-1"),
    ((*RUN, "data.test_limit=-5"), "data.test_limit=-5"),
    ((*RUN, "data.eval_batch_size=0"), "data.eval_batch_size=0"),
    ((*RUN, "optim.lr=-0.1"), "optim.lr=-0.1"),
    ((*RUN, "optim.lr=nan"), "optim.lr=nan"),
    ((*RUN, "optim.lr=inf"), "optim.lr=inf"),
    ((*RUN, "optim.momentum=1.5"), "optim.momentum=1.5"),
    ((*RUN, "optim.betas=[0.9]"), "optim.betas"),
    ((*RUN, "optim.name=lamb"), "optim.name=lamb"),
    ((*RUN, "schedule.first_cycle=0"), "schedule.first_cycle=0"),
    ((*RUN, "schedule.cycle_mult=99999999999999"), "schedule.cycle_mult="),
    ((*RUN, "schedule.name=linear"), "schedule.name=linear"),
    ((*RUN, "schedule=step", "schedule.milestones=[0]"), "schedule.milestones"),
    ((*RUN, "bn.momentum=2"), "bn.momentum=2"),
    ((*RUN, "bn.recompute_batches=0"), "bn.recompute_batches=0"),
    ((*RUN, "bn.recomputed_test_epochs=sometimes"), "bn.recomputed_test_epochs"),
    ((*RUN, "trainer.precision=8"), "trainer.precision=8"),
    ((*RUN, "trainer.accelerator=quantum"), "trainer.accelerator=quantum"),
    ((*RUN, "trainer.limit_train_batches=-1"), "trainer.limit_train_batches=-1"),
    ((*RUN, "checkpoints.keep_cycle_ends=-1"), "checkpoints.keep_cycle_ends=-1"),
    ((*RUN, "iterative.order=sideways"), "iterative.order=sideways"),
    ((*RUN, "iterative.epochs_per_layer=0"), "iterative.epochs_per_layer=0"),
    ((*RUN, "model.depth=${nothing}"), "cannot be resolved"),
    ((*RUN, f"tracking.experiment={LONG}"), "tracking.experiment"),
    ((*RUN, f"model.label={LONG}"), "model.label"),
    ((*RUN, f"data.root={LONG},{LONG}"), "data.root"),
    ((*RUN, "tracking.uri='http://[::1'"), "is malformed"),
    ((*RUN, "tracking.uri=http://[::1"), "key=value"),
    ((*RUN, "tracking.uri=http://127.0.0.1:99999"), "is malformed"),
    ((*RUN, "tracking.uri=sqlite:///notdb.db"), "is not an SQLite database"),
    ((*RUN, "tracking.uri=sqlite:///a_file/x.db"), "is a file, not a folder"),
    ((*RUN, "tracking.uri=ftp://host/x"), "is not supported"),
    ((*RUN, "tracking.uri=postgresql+psycopg://u@h/db"), "does not install"),
    ((*RUN, "model.bit=1"), "did you mean model.bits"),
    ((*RUN, "dataset=cifar11"), "did you mean dataset=cifar10"),
    ((*RUN, "model=wrm"), "did you mean model=wrn"),
    ((*RUN, "hydra.run.dir=a_file/run"), "cannot be written"),
    ((*RUN, "trainer.devices=0"), "trainer.devices"),
    ((*RUN, "key_without_value"), "key=value"),
    # binwrn-export
    (("binwrn-export",), "give a run id or checkpoint file"),
    (("binwrn-export", "garbage.ckpt", "--out", "x.bwn"), "No config beside"),
    (("binwrn-export", "garbage.ckpt", "--config", "empty.yaml", "--out", "x.bwn"),
     "is not a run's config"),
    (("binwrn-export", "garbage.ckpt", "--config", "list.yaml", "--out", "x.bwn"),
     "is not a run's config"),
    (("binwrn-export", "0" * 32, "--out", "x.bwn", "--tracking-uri", "sqlite:///notdb.db"),
     "is not an SQLite database"),
    (("binwrn-export", "nosuchrun", "--out", "x.bwn"), "neither a checkpoint file"),
    (("binwrn-export", "--size-only", "model.width=100000"), "weights"),
    (("binwrn-export", "--size-only", "model.depth=7"), "model.depth=7"),
    (("binwrn-export", "garbage.ckpt", "--out", "x.bwn", "--alias", "a"), "--alias"),
    # binwrn-eval
    (("binwrn-eval", "good.bwn", "data.test_limit=-5"), "data.test_limit=-5"),
    (("binwrn-eval", "good.bwn", "data.test_limit=0"), "data.test_limit=0"),
    (("binwrn-eval", "truncated.bwn"), "truncated.bwn"),
    (("binwrn-eval", "nosuch.bwn"), "nosuch.bwn"),
    (("binwrn-eval", "good.bwn", "dataset.num_classes=0"), "dataset.num_classes=0"),
    (("binwrn-eval", "good.bwn", "--runtime", "tensorrt"), "--runtime"),
    (("binwrn-eval", "notdb.db"), "notdb.db"),
    # binwrn-sweep
    (("binwrn-sweep", "no_such_sweep"), "no_such_sweep"),
    (("binwrn-sweep", "bad_sweep.yaml"), "bad_sweep.yaml"),
    (("binwrn-sweep", "sweep.yaml", "--dry-run"), "model.bits=3"),
    (("binwrn-sweep", "p1_fig6_ablation", "--jobs", "0"), "--jobs 0"),
    (("binwrn-sweep", "p1_fig6_ablation", "--dry-run", "model.bits=3"), "model.bits=3"),
    (("binwrn-sweep", "p1_fig6_ablation", "tracking.uri=sqlite:///notdb.db"),
     "is not an SQLite database"),
    # binwrn-report
    (("binwrn-report",), "say which runs"),
    (("binwrn-report", "--experiment", "x", "--tracking-uri", "sqlite:///notdb.db"),
     "is not an SQLite database"),
    (("binwrn-report", "--experiment", "x", "--tracking-uri", "sqlite:///nosuch.db"),
     "nosuch.db"),
    (("binwrn-report", "--sweep", "s", "--tracking-uri", "http://[::1"), "is malformed"),
    # binwrn-migrate
    (("binwrn-migrate", "--from", "sqlite:///notdb.db", "--to", "sqlite:///new.db"),
     "is not an SQLite database"),
    (("binwrn-migrate", "--from", "sqlite:///same.db", "--to", "sqlite:///same.db"),
     "the same store"),
    (("binwrn-migrate", "--from", "sqlite:///nosuch.db", "--to", "sqlite:///new.db"),
     "No tracking store"),
    (("binwrn-migrate", "--from", "http://[::1", "--to", "sqlite:///new.db"), "is malformed"),
    # binwrn-server (refused before PostgreSQL starts)
    (("binwrn-server", "--workers", "0"), "--workers 0"),
    (("binwrn-server", "--port", "-1"), "--port -1"),
    (("binwrn-server", "--port", "99999"), "--port 99999"),
    (("binwrn-server", "--pg-port", "0"), "--pg-port 0"),
    (("binwrn-server", "--data", "/etc/passwd"), "/etc/passwd is a file"),
    (("binwrn-server", "--port", "6000", "--pg-port", "6000"), "different ports"),
    # binwrn-sensitivity, binwrn-bench, binwrn-bench-loader, binwrn-gpucheck
    (("binwrn-sensitivity", "model.bits=3"), "model.bits=3"),
    (("binwrn-sensitivity", "experiment=smoke", "dataset=digits", "--val-size", "-3"),
     "val_size=-3"),
    (("binwrn-bench", "--steps", "0"), "--steps"),
    (("binwrn-bench", "--widths", "0"), "--widths"),
    (("binwrn-bench-loader", "--images", "0"), "--images"),
    (("binwrn-bench-loader", "--size", "axb"), "--size"),
    (("binwrn-gpucheck", "--sections", "everything"), "--sections"),
]


def _outcome(done: subprocess.CompletedProcess | None, words: str) -> str:
    """one sentence | traceback | hang | silent wrong | unclear (no one error line)."""
    if done is None:
        return "hang"
    text = done.stdout + done.stderr
    if "Traceback" in text:
        return "traceback"
    if done.returncode == 0:
        return "silent wrong"
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    return "one sentence" if len(errors) == 1 and words in errors[0] else "unclear"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    folders = [tmp_path_factory.mktemp(f"case{i}") for i in range(len(CASES))]
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
           "COLUMNS": "400"}  # one line per sentence, however long

    def run(index: int) -> tuple[str, str]:
        (command, *args), words = CASES[index]
        _setup(folders[index])
        try:
            done = subprocess.run([str(BIN / command), *args], cwd=folders[index], env=env,
                                  capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            done = None
        detail = "" if done is None else done.stderr[-1500:]
        return _outcome(done, words), detail

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(run, range(len(CASES))))


def test_there_are_at_least_80_cases_across_every_console_script() -> None:
    scripts = {command[0] for command, _ in CASES}
    assert len(CASES) >= 80
    assert scripts == {"binwrn-run", "binwrn-export", "binwrn-eval", "binwrn-sweep",
                       "binwrn-report", "binwrn-migrate", "binwrn-server",
                       "binwrn-sensitivity", "binwrn-bench", "binwrn-bench-loader",
                       "binwrn-gpucheck"}


@pytest.mark.parametrize("index", range(len(CASES)),
                         ids=[" ".join(c)[:70] for c, _ in CASES])
def test_bad_command_gets_one_sentence(outcomes: list, index: int) -> None:
    outcome, stderr = outcomes[index]
    assert outcome == "one sentence", f"{' '.join(CASES[index][0])[:200]}: {outcome}\n{stderr}"
