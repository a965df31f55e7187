"""Section `accuracy`: 1-bit WRN-20-10 with cutout on real CIFAR-10 for SGDR cycles 2+4+8,
trained by `binwrn-run` itself into a SQLite MLflow store under the output folder; test
accuracy with recomputed BN statistics at each cycle end beside the official Keras curve;
then the run is exported to a `.bwn` file and the file evaluated on the device.

The file holds fp32 weights and is evaluated in fp32 (TF32 off): when the run itself tested
in fp32 the two accuracies must be equal; when it tested under bf16 autocast (the GPU
profile, to fit the time budget) they may differ by the few test images whose top two
logits bf16 round-off swaps, so up to 0.1 points (10 of 10,000) pass, the difference named.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from binwrn.gpucheck.cycle_ends import logged_points, recomputed_accuracy
from binwrn.gpucheck.process import run_limited
from binwrn.gpucheck.profile import TOLERANCE_POINTS, Profile
from binwrn.gpucheck.rows import Row

EXPORT_RESERVE_S = 45  # of the section's limit, kept for export and evaluation
BF16_SLACK = 0.001     # accuracy (0.1 points) a bf16-tested run may differ from its fp32 file


def binwrn_command(function: str) -> list[str]:
    """A binwrn console entry point run by this Python (no installed script needed)."""
    module, name = function.split(":")
    return [sys.executable, "-c", f"from {module} import {name}; {name}()"]


def train(profile: Profile, out: Path, work: Path, data_root: str | None,
          timeout_s: float) -> tuple[Path, str]:
    """binwrn-run as a user runs it; returns its output folder and run id."""
    run_dir = work / "run"
    overrides = [*profile.accuracy_overrides, f"tracking.uri=sqlite:///{out}/mlflow.db",
                 f"tracking.artifact_root={work}/artifacts", f"data.cache_dir={work}/cache",
                 f"hydra.run.dir={run_dir}", *([f"data.root={data_root}"] if data_root else [])]
    log = out / "binwrn-run.log"
    with log.open("w") as sink:
        status = run_limited([*binwrn_command("binwrn.cli:run"), *overrides], timeout_s, sink,
                             {**os.environ, "PYTHONUNBUFFERED": "1"})
    outcome = run_dir / "outcome.json"
    if status != 0 or not outcome.is_file():
        tail = log.read_text()[-600:].strip().replace("\n", " / ")
        ended = f"exited {status}" if status is not None else f"passed {timeout_s:.0f} s"
        raise RuntimeError(f"binwrn-run {ended} ({log}): {tail}")
    return run_dir, json.loads(outcome.read_text())["run_id"]


def _curve_rows(profile: Profile, client, run_id: str, run_dir: Path, final_acc: float,
                emit) -> None:
    logged = logged_points(client, run_id, profile.cycle_ends)
    for end in profile.cycle_ends:
        if end in logged:
            acc, source = logged[end], "logged test_recomputed/acc"
        elif end == profile.cycle_ends[-1]:
            acc, source = final_acc, "the run's final test/acc (BN recomputed)"
        else:
            acc = recomputed_accuracy(run_dir, end, [], profile.device)
            source = f"recomputed by the check from cycle-end-epoch{end:04d}.ckpt"
        reference = profile.reference.get(end)
        verdict = "info"
        if reference is not None:
            verdict = "pass" if abs(100 * acc - reference) <= TOLERANCE_POINTS else "fail"
        emit(Row("accuracy", f"test acc after {end} epochs, recomputed BN",
                 f"{100 * acc:.2f} % ({source})",
                 f"{reference:.2f} % +- {TOLERANCE_POINTS} (Keras)" if reference else "",
                 verdict))


def _export_rows(profile: Profile, uri: str, run_id: str, run_acc: float, out: Path,
                 work: Path, emit) -> None:
    import torch

    from binwrn.configuration.compose import compose
    from binwrn.configuration.stored import run_config, stored_run_config
    from binwrn.export.evaluate import default_overrides, evaluate_packed
    from binwrn.export.format import read_packed
    from binwrn.export.job import export_model, log_export
    from binwrn.export.source import load_source
    from binwrn.tracking.store import open_client

    source = load_source(run_id, stored_run_config([]), uri)
    bwn = work / "wrn.bwn"  # its size report lands beside it; OUT gets the file alone
    result = export_model(source, bwn, None)
    log_export(source, result)
    shutil.copyfile(bwn, out / bwn.name)
    emit(Row("accuracy", "export to .bwn (logged on the run)",
             f"{bwn.stat().st_size:,} bytes, packed max |logit diff| "
             f"{result.checks['packed']:.2g}", "round-off", "pass"))
    packed = read_packed(bwn)
    data = [f"data.root={source.config.data.root}", f"data.cache_dir={work}/cache"]
    cfg = compose(default_overrides(packed.header, data))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    acc = evaluate_packed(packed, run_config(cfg), "torch", str(bwn),
                          device=profile.device)["acc"]
    # The precision the run's Trainer ran at (trainer.precision=auto resolved on its device).
    precision = open_client(uri).get_run(run_id).data.params["trainer.precision"]
    slack = 0.0 if precision == "32-true" else BF16_SLACK
    emit(Row("accuracy", f"the .bwn file's accuracy ({profile.device}, fp32)",
             f"{100 * acc:.2f} % vs the run's {100 * run_acc:.2f} % "
             f"(difference {100 * (acc - run_acc):+.2f} points)",
             "equal" if not slack else f"equal within 0.1 points ({precision} run)",
             "pass" if abs(acc - run_acc) <= slack + 1e-6 else "fail"))


def rows(profile: Profile, emit, out: Path, work: Path, data_root: str | None,
         limit_s: float) -> None:
    from binwrn.tracking.metrics import final_value
    from binwrn.tracking.store import open_client

    started = time.perf_counter()
    run_dir, run_id = train(profile, out, work, data_root, limit_s - EXPORT_RESERVE_S)
    uri = f"sqlite:///{out}/mlflow.db"
    client = open_client(uri)
    run = client.get_run(run_id)
    acc = final_value(run.data.metrics, "acc")  # the final test (test_final/acc), BN recomputed
    emit(Row("accuracy", "binwrn-run into MLflow (SQLite)",
             f"run {run_id} {run.info.status} in {uri.removeprefix('sqlite:///')}, "
             f"{time.perf_counter() - started:.0f} s", "FINISHED",
             "pass" if run.info.status == "FINISHED" else "fail"))
    _curve_rows(profile, client, run_id, run_dir, acc, emit)
    _export_rows(profile, uri, run_id, acc, out, work, emit)
