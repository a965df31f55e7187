"""The Table 2 ImageNet presets (p1_t2_{fp32,1bit}_imagenet_18-2.5): what they compose to,
what prepare() refuses, and a short training run on a generated JPEG tree in the official
layout, in-process (fp32) and as `binwrn-run` in a subprocess (1-bit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e2e import binwrn_run
from mlflow import MlflowClient

from binwrn.bench.synthetic_imagenet import write_jpeg_tree
from binwrn.configuration.compose import compose, conf_dir
from binwrn.configuration.identity import config_hash
from binwrn.configuration.prepare import prepare
from binwrn.data.imagenet import FileSplit
from binwrn.errors import ConfigError, DataError
from binwrn.export.format import read_packed
from binwrn.models import WideResNet18

PRESETS = {"p1_t2_fp32_imagenet_18-2.5": 32, "p1_t2_1bit_imagenet_18-2.5": 1}
# The paper's sizes shrunk for a CPU: 32-pixel crops of 36-64-pixel JPEGs, 8/16/32/64
# channels, 3 classes, one epoch (the model and crops differ; the code path does not).
TINY = ["dataset.num_classes=3", "model.width=0.125", "dataset.image_size=32",
        "dataset.scale_range=[32,48]", "dataset.eval_resize=36",
        "dataset.multi_crop_scales=[32,36,40,44,48]", "data.batch_size=6",
        "data.eval_batch_size=50", "trainer.max_epochs=1", "tracking.system_metrics_interval=0"]


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    write_jpeg_tree(root, classes=3, train_per_class=4, val_per_class=2)
    return root


@pytest.mark.parametrize(("preset", "bits"), PRESETS.items())
def test_presets_are_the_papers_recipe(preset, bits):
    cfg = compose([f"experiment={preset}"])
    assert cfg.model._target_ == "binwrn.models.WideResNet18"
    assert (cfg.model.depth, cfg.model.width, cfg.model.bits) == (18, 2.5, bits)
    assert (cfg.model.stem_stride, cfg.model.stem_pool) == (2, True)
    assert cfg.dataset.name == "imagenet" and cfg.model.num_classes == 1000
    assert cfg.trainer.max_epochs == 62 and cfg.schedule.name == "sgdr"  # 2+4+8+16+32
    assert cfg.optim.weight_decay == 1e-4 and cfg.optim.lr == 0.1
    assert cfg.bn.learn_affine is True and cfg.model.bn_affine is True
    assert (cfg.data.cutout, cfg.data.pad, cfg.data.batch_size) == (0, 0, 256)
    assert (cfg.dataset.image_size, cfg.dataset.train_crop) == (224, "scale_jitter")
    assert list(cfg.dataset.scale_range) == [256, 480] and cfg.dataset.multi_crop == 25
    # the 1-bit file quotes both precisions' numbers; its 32-bit twin only names it
    header = (conf_dir() / "experiment" / "p1_t2_1bit_imagenet_18-2.5.yaml").read_text()
    numbers = ("26.92 / 9.20", "22.99 / 6.91") if bits == 32 else ("31.03 / 11.51",
                                                                    "26.04 / 8.48")
    assert all(n in header for n in numbers)


def test_loader_settings_leave_the_config_hash_alone():
    base = config_hash(compose(["experiment=p1_t2_1bit_imagenet_18-2.5"]))
    assert config_hash(compose(["experiment=p1_t2_1bit_imagenet_18-2.5", "dataset.workers=0",
                                "dataset.decoder=pil"])) == base
    assert config_hash(compose(["experiment=p1_t2_1bit_imagenet_18-2.5",
                                "dataset.train_crop=random_resized"])) != base


@pytest.mark.parametrize(("override", "error", "message"), [
    ("dataset.multi_crop=10", ConfigError, "dataset.multi_crop=10 is not allowed: use 0"),
    ("dataset.eval_resize=30", ConfigError, "dataset.eval_resize resizes a shorter side to 30"),
    ("dataset.workers=-1", ConfigError, "dataset.workers=-1"),
    ("model.width=0.1", ConfigError, "model.width=0.1"),
    ("dataset.num_classes=4", DataError, "has 3 class folders but dataset.num_classes is 4"),
    ("data.batch_size=20", ConfigError, "data.batch_size=20 does not fit the 12 training"),
])
def test_bad_settings_are_refused_before_training(jpegs, tmp_path, override, error, message):
    cfg = compose(["experiment=p1_t2_1bit_imagenet_18-2.5", f"data.root={jpegs}", *TINY,
                   f"tracking.uri=sqlite:///{tmp_path}/x.db", override])
    with pytest.raises(error, match=message):
        prepare(cfg)


def test_missing_imagenet_names_the_layout(tmp_path):
    cfg = compose(["experiment=p1_t2_1bit_imagenet_18-2.5", f"data.root={tmp_path}/none",
                   f"tracking.uri=sqlite:///{tmp_path}/x.db"])
    with pytest.raises(DataError, match=r"expected .*/none/train/<wnid>/\*.JPEG and "
                                        r".*/none/val/<wnid>/\*.JPEG"):
        prepare(cfg)


def test_fp32_preset_trains_and_records_both_tests_in_process(jpegs, tmp_path, fresh_store):
    from binwrn.train.run import train

    # bf16 autocast, as on a GPU: the 25-crop test runs its batches inside it too.
    cfg = compose(["experiment=p1_t2_fp32_imagenet_18-2.5", f"data.root={jpegs}", *TINY,
                   "dataset.workers=0", "trainer.precision=bf16-mixed",
                   f"tracking.uri=sqlite:///{fresh_store}",
                   f"tracking.artifact_root={tmp_path / 'artifacts'}"])
    prepared = prepare(cfg)
    assert isinstance(prepared.train, FileSplit) and isinstance(prepared.model, WideResNet18)
    result = train(prepared, tmp_path / "out", show_progress=False)
    assert result["test_images"] == 6
    assert 0 <= result["test_25crop/top1_error_pct"] <= 100
    assert result["test_25crop/top5_error_pct"] == 0  # 3 classes: the label is always in the top 5
    run = MlflowClient(f"sqlite:///{fresh_store}").get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset.name"] == "imagenet" and run.data.params["model.bits"] == "32"
    assert run.data.metrics["test_25crop/top1_acc"] == pytest.approx(
        1 - result["test_25crop/top1_error_pct"] / 100)
    assert run.data.metrics["test_final/acc"] == result["test_final/acc"]


@pytest.mark.slow
def test_1bit_preset_runs_end_to_end_with_binwrn_run(jpegs, tmp_path):
    done = binwrn_run(tmp_path, "experiment=p1_t2_1bit_imagenet_18-2.5", f"data.root={jpegs}",
                      *TINY, "trainer.max_epochs=2", "dataset.workers=2", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = done.runs()
    assert run.info.status == "FINISHED"
    assert run.data.params["model.bits"] == "1" and run.data.params["model.width"] == "0.125"
    assert run.data.params["optim.weight_decay"] == "0.0001"
    assert run.data.params["bn.learn_affine"] == "True"
    history = MlflowClient(f"sqlite:///{done.store}").get_metric_history(run.info.run_id,
                                                                           "test/acc")
    assert [m.step for m in history][:2] == [1, 2]
    for name in ("top1_acc", "top1_error_pct", "top5_acc", "top5_error_pct"):
        assert f"test_25crop/{name}" in run.data.metrics
    assert "25crop test error" in done.stdout

    # The trained run exported by id (its stored config and final.ckpt), checked on its
    # val images in PyTorch and ONNX before anything is written.
    exported = subprocess.run(
        [str(Path(sys.executable).with_name("binwrn-export")), run.info.run_id, "--out",
         "m.bwn", "--onnx", "m.onnx", "--tracking-uri", f"sqlite:///{done.store}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})  # this checkout's
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "packed max |diff| 0" in exported.stdout
    assert read_packed(tmp_path / "m.bwn").header["source"]["run_id"] == run.info.run_id


@pytest.mark.parametrize("net", ["mlp", "vgg", "resnet20"])
def test_export_refuses_paper3_nets_in_one_sentence(net):
    from binwrn.configuration.stored import run_config
    from binwrn.export.job import check_packable

    with pytest.raises(ConfigError, match=r"packs model=wrn and model=resnet18_wide only; "
                       r"binwrn\.models\.\w+ \(one of paper 3's nets\) has no packed format: "
                       r"use --size-only for its sizes\.$"):
        check_packable(run_config(compose([f"model={net}"])))
    check_packable(run_config(compose(["experiment=smoke"])))  # the CIFAR WRN packs


def test_imagenet_net_exports_and_evaluates_from_a_checkpoint(jpegs, tmp_path, monkeypatch,
                                                              capsys):
    """binwrn-export on a checkpoint beside its Hydra config: checked on the val images'
    centre crops, written as .bwn and ONNX; binwrn-eval's NumPy runtime agrees with torch."""
    from helpers_export import trained_looking_wrn18
    from omegaconf import OmegaConf
    from test_export_cli import _call

    from binwrn import cli

    cfg = compose(["experiment=p1_t2_1bit_imagenet_18-2.5", f"data.root={jpegs}", *TINY,
                   "dataset.workers=0"])
    model, _ = trained_looking_wrn18(seed=4, num_classes=3)
    ckpt = tmp_path / "run" / "checkpoints" / "final.ckpt"
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    ckpt.parent.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    code, out, err = _call(cli.export, monkeypatch, capsys, ckpt, "--out", tmp_path / "m.bwn",
                           "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    assert "packed max |diff| 0" in out and "onnx max |diff|" in out.lower()
    header = read_packed(tmp_path / "m.bwn").header
    assert header["topology"] == "mcdonnell-resnet18-wide-preact"
    assert header["data"]["dataset"] == "imagenet" and header["model"]["stem_pool"] is True
    results = {}
    for runtime in ("numpy", "torch"):
        code, _, err = _call(cli.evaluate, monkeypatch, capsys, tmp_path / "m.bwn",
                             f"data.root={jpegs}", *TINY, "--runtime", runtime,
                             "--json", tmp_path / f"{runtime}.json")
        assert code == 0, err
        results[runtime] = json.loads((tmp_path / f"{runtime}.json").read_text())
    assert results["numpy"]["images"] == 6  # 3 classes x 2 val images
    assert results["numpy"]["correct"] == results["torch"]["correct"]


def test_evaluation_decodes_imagenet_a_chunk_at_a_time(jpegs):
    """binwrn-eval scores a val set chunk by chunk (50,000 crops at once would be 30 GB); the
    chunks are the single centre crops that testing feeds the model, in file order."""
    from binwrn.configuration.data import build_crops, data_source
    from binwrn.data.loading import eval_batches, load_data

    cfg = compose(["experiment=p1_t2_1bit_imagenet_18-2.5", f"data.root={jpegs}", *TINY])
    _, test = load_data(data_source(cfg))
    chunks = list(eval_batches(test, build_crops(cfg), size=4))
    assert [c.shape for c in chunks] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    (whole,) = eval_batches(test, build_crops(cfg))
    assert whole.dtype == np.float32 and np.array_equal(np.concatenate(chunks), whole)
    assert 0 <= whole.min() and whole.max() <= 255 and whole.max() > 1  # raw pixels, as trained
