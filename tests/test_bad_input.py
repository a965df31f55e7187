"""Bad input: a non-zero exit, one sentence naming the value, no traceback, no run stored.

Each case is one row of the bad-input table in docs/reliability.md: a function that writes
whatever bad files the case needs under `tmp` and returns the overrides, and the text the
one error line must contain.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e import binwrn_run
from helpers_data import CIFAR10_CLASSES, write_cifar10_pickles, write_image_folder

pytestmark = pytest.mark.slow


def _given(*overrides: str):
    return lambda tmp: list(overrides)


def _pickles_with_wrong_md5(tmp: Path) -> list[str]:
    write_cifar10_pickles(tmp / "c10", n_train_per_batch=10, n_test=10)
    return ["dataset=cifar10", f"data.root={tmp / 'c10'}"]


def _truncated_pickle(tmp: Path) -> list[str]:
    written = write_cifar10_pickles(tmp / "c10", n_train_per_batch=10, n_test=10)
    batch = written["folder"] / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:500])
    return ["dataset=cifar10", f"data.root={tmp / 'c10'}", "data.verify_checksums=false"]


def _too_few_class_folders(tmp: Path) -> list[str]:
    write_image_folder(tmp / "tree", CIFAR10_CLASSES[:3], 4, 2)
    return ["dataset=cifar10", f"data.root={tmp / 'tree'}"]


def _unreadable_image(tmp: Path) -> list[str]:
    write_image_folder(tmp / "tree", CIFAR10_CLASSES, 4, 2)
    (tmp / "tree" / "test" / "cat" / "00001.png").write_bytes(b"not a png")
    return ["dataset=cifar10", f"data.root={tmp / 'tree'}"]


def _output_dir_under_a_file(tmp: Path) -> list[str]:
    (tmp / "a_file").write_text("")
    return [f"hydra.run.dir={tmp / 'a_file' / 'run'}"]


CASES = {
    "bits": (_given("model.bits=3"), "model.bits=3"),
    "depth": (_given("model.depth=21"), "model.depth=21"),
    "width": (_given("model.width=0"), "model.width=0"),
    "missing data": (_given("dataset=cifar10", "data.root=/nonexistent/cifar"), "data.root"),
    "wrong checksum": (_pickles_with_wrong_md5, "data_batch_1 has MD5"),
    "truncated pickle": (_truncated_pickle, "data_batch_2 is not a readable CIFAR batch"),
    "wrong class count": (_too_few_class_folders, "has 3 class folders"),
    "unreadable image": (_unreadable_image, "00001.png"),
    "batch too large": (_given("data.batch_size=5000"), "data.batch_size=5000"),
    "schedule": (_given("schedule.first_cycle=0"), "schedule.first_cycle=0"),
    "tracking uri": (_given("tracking.uri=notascheme"), "tracking.uri=notascheme"),
    "unreachable server": (_given("tracking.uri=http://127.0.0.1:1"),
                           "tracking.uri=http://127.0.0.1:1"),
    "output dir": (_output_dir_under_a_file, "hydra.run.dir="),
    "trainer value": (_given("trainer.max_epochs=-5"), "trainer"),
    "pad type": (_given("data.pad=abc"), "data.pad=abc"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every case's CLI run, three at a time: each spends most of its seconds importing."""
    # Folders made here, not in the threads: a worker's first mktemp creates pytest's base
    # folder, and three threads doing that at once collide (seen under pytest-xdist).
    folders = {name: tmp_path_factory.mktemp(name.replace(" ", "_")) for name in CASES}

    def run(name: str):
        tmp = folders[name]
        return binwrn_run(tmp, "experiment=smoke", "dataset=digits", *CASES[name][0](tmp))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_value_gets_one_clear_sentence(outcomes: dict, name: str) -> None:
    named = CASES[name][1]
    out = outcomes[name]
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    error_lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and named in error_lines[0], out.stderr[-2000:]
    assert out.runs() == []


def test_unknown_dataset_lists_the_choices(tmp_path: Path) -> None:
    out = binwrn_run(tmp_path, "dataset=tinyimagenet")  # imagenet and mnist exist now
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "tinyimagenet" in out.stderr and "cifar100" in out.stderr and "mnist" in out.stderr
