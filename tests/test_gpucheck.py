"""binwrn-gpucheck: the shrunk CPU run end to end, its refusals, its rows, and the staging
plan of `make gpu-bundle` (computed from the image's package list, folders within a part
size), and `make test-compat`'s refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from binwrn.gpucheck import bundle
from binwrn.gpucheck.rows import Row, markdown, passed, read_rows

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


# Slow: four sections in subprocesses with three inductor compiles of WRN-8-1 (two in the gpu
# tests, one timed by the speed section), each ~40 s of CPU: minutes on 2 cores.
@pytest.mark.slow
def test_cpu_shrunk_check_runs_every_section_end_to_end(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run([str(BIN / "binwrn-gpucheck"), "--cpu", "--out", str(out),
                           "--work", str(work)], capture_output=True, text=True, timeout=1500)
    log = (out / "gpucheck.log").read_text() if (out / "gpucheck.log").is_file() else ""
    assert done.returncode == 0, done.stdout[-3000:] + log[-3000:]
    assert "every step ran (cpu-shrunk)" in done.stdout
    doc = (out / "gpu-check.md").read_text()
    table = [line for line in doc.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [line.split(" | ") for line in table[1:]]
    assert {r[0].strip("| ") for r in rows} == {"environment", "gpu_tests", "speed", "accuracy"}
    assert all(r[-1].strip(" |") == "cpu-shrunk" for r in rows)
    checks = " ".join(r[1] for r in rows)
    for expected in ("test_compile_agrees_with_the_plain_path", "torch.compile",
                     "bf16 arithmetic", "after 1 epochs, recomputed BN",
                     "after 3 epochs, recomputed BN", "the .bwn file's accuracy"):
        assert expected in checks
    raw = read_rows(out / "rows.jsonl")  # the verdicts before shrinking: real passes
    broken = [r for r in raw if r.verdict not in ("pass", "info")]
    assert not broken, broken
    (run,) = MlflowClient(f"sqlite:///{out}/mlflow.db").search_runs(["1"])
    assert run.info.status == "FINISHED" and (out / "wrn.bwn").is_file()


def test_gpu_mode_without_cuda_is_refused_in_one_sentence(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "binwrn-gpucheck"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "CPU=1" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_broken_step_stays_visible_after_shrinking() -> None:
    rows = [Row("speed", "a", "1 s"), Row("accuracy", "b", "boom", verdict="error")]
    shrunk = [r.shrunk() for r in rows]
    assert [r.verdict for r in shrunk] == ["cpu-shrunk", "error"]
    assert not passed(shrunk) and passed(shrunk[:1]) and not passed([])
    assert "a \\| b" in markdown([Row("x", "a | b", "v")], "h", [])


def test_bundle_carries_only_what_the_image_lacks_at_the_image_versions() -> None:
    resolved = dict(bundle.resolve(REPO, bundle.IMAGE, "3.12"))
    assert resolved["torch"] == "2.11.0" and resolved["numpy"] == "2.5.2"  # the image's pins
    missing = dict(bundle.missing_packages(REPO, bundle.IMAGE, "3.12"))
    assert {"hydra-core", "omegaconf", "mlflow", "sqlalchemy", "alembic"} <= set(missing)
    assert not {"numpy", "pandas", "torch", "torchvision", "rich", "pyyaml", "pytest"} \
        & set(missing)  # in the image
    assert "antlr4-python3-runtime" in bundle.source_only(REPO / "uv.lock")  # built here
    assert "colorama" not in missing and "pywin32" not in missing  # Windows-only needs


def test_bundle_follows_the_image_list_it_is_given(tmp_path: Path) -> None:
    from binwrn.gpucheck import compat

    floor = compat.floors(REPO / "pyproject.toml", ("mlflow",))["mlflow"]
    image = tmp_path / "image.txt"
    image.write_text(bundle.IMAGE.read_text() + f"# this image also has MLflow\nMLflow=={floor}\n"
                     "SQLAlchemy\nalembic[tz] >= 1\n")
    assert {"mlflow", "sqlalchemy", "alembic", "torch", "pyyaml"} <= bundle.image_names(image)
    assert "python" not in bundle.image_names(image)
    assert dict(bundle.resolve(REPO, image, "3.12"))["mlflow"] == floor  # the image's pin
    missing = dict(bundle.missing_packages(REPO, image, "3.12"))
    assert {"hydra-core", "omegaconf"} <= set(missing)
    assert not {"mlflow", "sqlalchemy", "alembic"} & set(missing)


@pytest.mark.parametrize(("args", "sentence"), [
    (["--tar", "nowhere.tar"], "nowhere.tar is not there: pass TAR="),
    (["--image", "{tmp}/none.txt"], "none.txt is not there: pass IMAGE="),
    (["--image", "{tmp}/nopython.txt"], "names no Python: add a line such as python=="),
    (["--part-mib", "2"], "PART_MIB=2 leaves"),
])
def test_bundle_refuses_bad_input_in_one_sentence(tmp_path: Path, args, sentence) -> None:
    (tmp_path / "nopython.txt").write_text("torch==2.11.0\n")
    tar = tmp_path / "c.tar"
    tar.write_bytes(b"")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = subprocess.run([sys.executable, "-m", "binwrn.gpucheck.bundle", "--tar", str(tar),
                           *args], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("gpu-bundle: ")
    assert sentence in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_staging_plan_keeps_every_folder_within_the_part_size(tmp_path: Path) -> None:
    sizes = {"part-aa": 60, "part-ab": 60, "part-ac": 9, "wheels.bin": 30, "sums": 0}
    items = []
    for name, mib in sizes.items():
        (tmp_path / name).write_bytes(b"\0" * (mib * bundle.MIB + 100))
        items.append(tmp_path / name)
    capacity = 62 * bundle.MIB
    calls = bundle.plan_calls(items, capacity)
    assert len(calls) == 3 and all(sum(map(bundle.size, c)) <= capacity for c in calls)
    assert sorted(i.name for c in calls for i in c) == sorted(sizes)
    with pytest.raises(bundle.Refusal, match="does not fit one part"):
        bundle.plan_calls(items, 50 * bundle.MIB)
    folders = bundle.stage_folders(tmp_path / "bundle", calls)
    manifest = (folders[0] / "MANIFEST-part1.sha256").read_text()
    assert json.dumps(manifest) and "part-a" in manifest


def test_compat_refuses_a_missing_or_unsupported_python_in_one_sentence(tmp_path) -> None:
    """No python3.13 on PATH, in pyenv's versions (PYENV_ROOT empty) or uv's: one sentence,
    exit 2, never a silent pass; so for a Python outside requires-python."""
    uv = tmp_path / "uv"  # a uv that finds no interpreter, as on a machine without one
    uv.write_text("#!/bin/sh\nexit 2\n")
    uv.chmod(0o755)
    env = {"PATH": "/nonexistent", "PYENV_ROOT": str(tmp_path), "UV": str(uv)}
    for version, sentence in (("3.13", "No Python 3.13 on this machine"),
                              ("3.10", "Python 3.10 is outside the supported range")):
        done = subprocess.run([sys.executable, "-m", "binwrn.gpucheck.compat", "--python",
                               version], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith(f"test-compat: {sentence}")
        assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


def test_compat_oldest_set_is_the_image_pins_and_the_floors() -> None:
    from binwrn.gpucheck import compat

    oldest = compat.constraints("3.12", compat.IMAGE)
    assert {"torch==2.11.0", "torchvision==0.26.0", "numpy==2.5.2", "onnx==1.23.1",
            "onnxruntime==1.30.0", "lightning==2.6.0"} <= set(oldest)
    floors = compat.floors(REPO / "pyproject.toml", compat.FLOORED)
    assert {f"{name}=={floor}" for name, floor in floors.items()} <= set(oldest)
    assert compat.constraints("3.13", compat.IMAGE) == []  # the newest versions
