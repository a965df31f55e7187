"""binwrn-gpucheck: the shrunk CPU run end to end, its refusals, its rows, and the staging
plan of `make gpu-bundle` (sizes against the device tool's 64 MiB per call)."""

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


def test_bundle_carries_what_the_device_lacks_at_the_locked_versions() -> None:
    missing = {name: (version, wheels)
               for name, version, wheels in bundle.missing_packages(REPO / "uv.lock")}
    assert {"hydra-core", "omegaconf", "mlflow", "sqlalchemy", "alembic"} <= set(missing)
    assert not {"numpy", "pandas", "torch", "rich", "pyyaml"} & set(missing)  # in the image
    assert missing["antlr4-python3-runtime"][1] is False  # source only: built into a wheel
    assert "colorama" not in missing and "pywin32" not in missing  # Windows-only needs


def test_staging_plan_keeps_every_call_under_the_limit(tmp_path: Path) -> None:
    sizes = {"part-aa": 60, "part-ab": 60, "part-ac": 9, "wheels.bin": 30, "sums": 0}
    items = []
    for name, mib in sizes.items():
        (tmp_path / name).write_bytes(b"\0" * (mib * bundle.MIB + 100))
        items.append(tmp_path / name)
    capacity = bundle.CALL_LIMIT - 2 * bundle.MIB
    calls = bundle.plan_calls(items, capacity)
    assert len(calls) == 3 and all(sum(map(bundle.size, c)) <= capacity for c in calls)
    assert sorted(i.name for c in calls for i in c) == sorted(sizes)
    with pytest.raises(SystemExit, match="cannot travel in one call"):
        bundle.plan_calls(items, 50 * bundle.MIB)
    folders = bundle.stage_folders(tmp_path / "bundle", calls)
    manifest = (folders[0] / "MANIFEST-call1.sha256").read_text()
    assert json.dumps(manifest) and "part-a" in manifest
