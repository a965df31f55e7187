"""Bad input: a non-zero exit, one sentence naming the value, no traceback, no run stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import binwrn_run

pytestmark = pytest.mark.slow

CASES = {
    "bits": (["model.bits=3"], "model.bits=3"),
    "depth": (["model.depth=21"], "model.depth=21"),
    "width": (["model.width=0"], "model.width=0"),
    "missing data": (["dataset=cifar10", "data.root=/nonexistent/cifar"], "data.root"),
    "batch too large": (["dataset=digits", "data.batch_size=5000"], "data.batch_size=5000"),
    "schedule": (["schedule.first_cycle=0"], "schedule.first_cycle=0"),
    "tracking uri": (["tracking.uri=notascheme"], "tracking.uri=notascheme"),
    "unreachable server": (["tracking.uri=http://127.0.0.1:1"], "tracking.uri=http://127.0.0.1:1"),
    "trainer value": (["trainer.max_epochs=-5"], "trainer"),
    "pad type": (["data.pad=abc"], "data.pad=abc"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_value_gets_one_clear_sentence(tmp_path: Path, name: str) -> None:
    overrides, named = CASES[name]
    out = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits", *overrides)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    error_lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and named in error_lines[0], out.stderr[-2000:]
    assert out.runs() == []


def test_unknown_dataset_lists_the_choices(tmp_path: Path) -> None:
    out = binwrn_run(tmp_path, "dataset=imagenet")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "cifar100" in out.stderr and "imagenet" in out.stderr
