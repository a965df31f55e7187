"""binwrn-run end to end in a subprocess, on generated official-format files and on the real
CIFAR-10 PNGs of ../shared, asserting what the MLflow store holds afterwards."""

from __future__ import annotations

import json
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from e2e import binwrn_run
from helpers_data import write_cifar10_pickles
from mlflow import MlflowClient

from binwrn.data import load_splits
from binwrn.models import WideResNet

pytestmark = pytest.mark.slow
SHARED_TAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-png.tar"
CURATED = ("dataset.name", "model.depth", "model.width", "model.bits", "bn.learn_affine",
           "schedule.name", "trainer.max_epochs", "optim.lr", "data.cutout")


def _accuracy_of_checkpoint(ckpt: Path, depth: int, root: Path, cache: Path, limit: int) -> float:
    """Evaluate the stored final weights ourselves on the same test images."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model = WideResNet(depth=depth, width=1, num_classes=10, bits=1)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    _, test = load_splits("cifar10", root, 10, cache_dir=cache, test_limit=limit,
                          verify_checksums=False)  # the generated pickles or the PNG tree
    images = torch.from_numpy(test.images).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        predicted = model.eval()(images).argmax(dim=1).numpy()
    return float(np.mean(predicted == test.labels))


def _check_run(run, client: MlflowClient, expected_params: dict[str, str], epochs: int) -> None:
    assert run.info.status == "FINISHED"
    for key in CURATED:
        assert key in run.data.params
    for key, value in expected_params.items():
        assert run.data.params[key] == value
    for tag in ("binwrn.config_hash", "git.commit", "version.torch", "version.mlflow", "device"):
        assert run.data.tags.get(tag)
    history = client.get_metric_history(run.info.run_id, "test/acc")
    assert [m.step for m in history] == list(range(1, epochs + 1))  # one value per step
    for name in ("train/loss", "train/acc", "test/loss", "test/error_pct", "lr"):
        assert len(client.get_metric_history(run.info.run_id, name)) == epochs
    final = client.get_metric_history(run.info.run_id, "test_final/acc")
    assert [m.step for m in final] == [epochs]  # the saved model's test, under its own key
    acc = run.data.metrics["test_final/acc"]
    assert run.data.metrics["test_final/error_pct"] == pytest.approx(100 * (1 - acc))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    expected = {"config", "hydra", "checkpoints", "model_summary.json", "model_summary.md",
                "figures"}
    assert expected <= artifacts
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {"figures/curves.png"}
    # The precision the Trainer ran at (auto resolved), and no temperature on a BN net.
    assert run.data.params["trainer.precision"] == "32-true"
    assert "model.temperature" not in run.data.params
    hydra_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "hydra")}
    assert {"config.yaml", "overrides.yaml", "hydra.yaml"} <= hydra_files


def test_run_on_official_pickles_records_the_real_test_accuracy(tmp_path: Path) -> None:
    data = tmp_path / "cifar10"
    write_cifar10_pickles(data, n_train_per_batch=60, n_test=100, seed=1)
    out = binwrn_run(tmp_path, "experiment=smoke", f"data.root={data}", "data.train_limit=null",
                     "data.verify_checksums=false",
                     "data.test_limit=null", "data.cutout=18")
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = out.runs()
    client = MlflowClient(f"sqlite:///{out.store}")
    _check_run(run, client, {"dataset.name": "cifar10", "model.bits": "1", "model.depth": "8",
                             "trainer.max_epochs": "2", "data.cutout": "18"}, epochs=2)
    ckpt = tmp_path / "out" / "checkpoints" / "final.ckpt"
    own = _accuracy_of_checkpoint(ckpt, 8, data, tmp_path / "cache", limit=None)
    assert run.data.metrics["test_final/acc"] == pytest.approx(own, abs=1e-6)
    assert "test error" in out.stdout and run.info.run_id in out.stdout


@pytest.mark.skipif(not SHARED_TAR.is_file(), reason="../shared CIFAR-10 tar not present")
def test_run_on_real_cifar10_png_subset(tmp_path: Path) -> None:
    data = tmp_path / "cifar10-png"
    quota = {"train": 250, "test": 100}  # per class: decoding all 60,000 would take ~30 s
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(SHARED_TAR) as tar:
        keep = []
        for member in tar:
            parts = Path(member.name).parts
            split = next((p for p in parts if p in quota), None)
            if not member.isfile() or split is None or not member.name.endswith(".png"):
                continue
            key = (split, parts[parts.index(split) + 1])
            if taken.get(key, 0) < quota[split]:
                taken[key] = taken.get(key, 0) + 1
                keep.append(member)
        tar.extractall(data, members=keep, filter="data")
    data = next(p.parent for p in data.rglob("train") if p.is_dir())
    out = binwrn_run(tmp_path, "model.depth=8", "model.width=1", "trainer.max_epochs=1",
                     f"data.root={data}", "data.train_limit=2500", "data.test_limit=1000",
                     "tracking.system_metrics_interval=1")
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = out.runs()
    client = MlflowClient(f"sqlite:///{out.store}")
    _check_run(run, client, {"dataset.name": "cifar10", "model.width": "1",
                             "schedule.name": "sgdr", "bn.learn_affine": "False"}, epochs=1)
    assert "on 1,000 images" in out.stdout
    assert "warning: trainer.max_epochs=1 stops inside the SGDR cycle of epochs 1-2" in out.stderr
    own = _accuracy_of_checkpoint(tmp_path / "out" / "checkpoints" / "final.ckpt", 8, data,
                                  tmp_path / "cache", limit=1000)
    assert run.data.metrics["test_final/acc"] == pytest.approx(own, abs=1e-6)
    assert own > 0.15  # one epoch on 2,500 real images learns something (chance: 0.10)
    assert any(k.startswith("system/") for k in run.data.metrics)


def test_multirun_records_one_run_per_job_and_no_secret_from_the_environment(
    tmp_path: Path,
) -> None:
    secret = "s3cr3t-token-5f1d2c"
    out = binwrn_run(tmp_path, "-m", "experiment=smoke", "dataset=digits", "model.bits=32,1",
                     "trainer.max_epochs=1", env={"BINWRN_TEST_API_TOKEN": secret})
    assert out.returncode == 0, out.stderr[-3000:]
    stored = [out.store, *(p for p in (tmp_path / "artifacts").rglob("*") if p.is_file())]
    assert not [p for p in stored if secret.encode() in p.read_bytes()]
    runs = out.runs()
    assert sorted(r.data.params["model.bits"] for r in runs) == ["1", "32"]
    assert len({r.data.tags["binwrn.config_hash"] for r in runs}) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    # One table of the jobs side by side: the setting that differs, error, run names.
    table = out.stdout[out.stdout.index("binwrn-run: 2 jobs"):]
    assert "model.bits" in table and table.count("finished") == 2
    for r in runs:
        assert f"{r.data.metrics['test_final/error_pct']:.2f} %" in table
        # a long name folds over lines of its cell: compare letters and digits only
        assert re.sub(r"\W", "", r.info.run_name) in re.sub(r"\W", "", table)
    # Quiet: no library INFO chatter (MLflow's store creation and system metrics, Lightning's
    # device lines) and no config dump, which stay behind verbose=true.
    said = out.stdout + out.stderr
    assert not re.findall(r".* INFO .*", said) and "resolved config" not in said
    # The second job's clock starts at that job's start, not the process's.
    second = json.loads((tmp_path / "out" / "1" / "outcome.json").read_text())
    (job1,) = [r for r in runs if r.info.run_id == second["run_id"]]
    assert job1.data.metrics["time/to_first_step_s"] < second["seconds"]


def test_same_seed_with_deterministic_switch_repeats_exactly(tmp_path: Path) -> None:
    def run(attempt: str, seed: int):
        folder = tmp_path / attempt
        folder.mkdir()
        return binwrn_run(folder, "experiment=smoke", "dataset=digits", f"seed={seed}",
                          "deterministic=true", "data.cutout=18")

    # Separate processes at the same time: a repeat must not depend on what else runs.
    with ThreadPoolExecutor(max_workers=3) as pool:
        outs = list(pool.map(run, "abc", (7, 7, 8)))
    finals = []
    for out in outs:
        assert out.returncode == 0, out.stderr[-3000:]
        (stored,) = out.runs()
        metrics = stored.data.metrics.items()
        finals.append({k: v for k, v in metrics if k.startswith(("train/", "test"))})
    assert finals[0] == finals[1]
    assert finals[0] != finals[2]  # the seed reaches initialisation, shuffling and augmentation


def test_divergence_fails_that_run_and_the_sweep_moves_on(tmp_path: Path) -> None:
    out = binwrn_run(tmp_path, "-m", "experiment=smoke", "dataset=digits", "model.bits=32",
                     "trainer.max_epochs=1", "optim.lr=1e12,0.1")
    assert out.returncode == 1  # the sweep ran every job, then reports the failure
    assert "Traceback" not in out.stderr
    by_lr = {r.data.params["optim.lr"]: r for r in out.runs()}
    assert by_lr["1000000000000.0"].info.status == "FAILED"
    assert "NaN or infinite" in by_lr["1000000000000.0"].data.tags["binwrn.failure_reason"]
    assert by_lr["0.1"].info.status == "FINISHED"
    assert "1 job(s) failed" in out.stderr
