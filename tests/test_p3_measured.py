"""Paper 3 as its official code measured it (issue 29): the best test accuracy over epochs and
its epoch beside the final test, the shipped guided orders, the official CIFAR-10 validation
split, and the ImageNet ResNet-21 (spec 3.4-3.6, section 4 item 8)."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from binwrn.configuration.build import binarization_order, build_model
from binwrn.configuration.compose import compose
from binwrn.configuration.data import split_validation
from binwrn.data.arrays import ImageSplit
from binwrn.errors import ConfigError
from binwrn.models.layer_order import binarizable_names
from binwrn.report.paper import PAPER3_ASCEND

# The official code's MLP orders: all 6 permutations of its 3 layers (spec 3.6), as binwrn
# writes them (forward and reverse by name, the other four as lists).
MLP_ORDERS = ["forward", "[fc1,fc3,fc2]", "[fc2,fc1,fc3]", "[fc2,fc3,fc1]", "[fc3,fc1,fc2]",
              "reverse"]


@pytest.mark.slow
def test_the_mlp_trains_with_each_official_order_and_logs_best_and_final(tmp_path,
                                                                          monkeypatch, capsys):
    from e2e import binwrn_run
    from helpers_cli import call_entry
    from mlflow import MlflowClient

    from binwrn.report import cli as report_cli

    epochs = 4
    done = binwrn_run(tmp_path, "-m", "experiment=p3_mlp300", "dataset=digits",
                      "data.train_limit=300", "data.val_size=100", "data.test_limit=200",
                      "data.batch_size=50", f"trainer.max_epochs={epochs}",
                      "iterative.epochs_per_layer=1", "tracking.system_metrics_interval=0",
                      f"iterative.order={','.join(MLP_ORDERS)}", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # The held-out split is said on the settings line (digits: no official split to use).
    assert "100 validation images (balanced split)" in done.stdout
    runs = done.runs()
    assert len(runs) == len(MLP_ORDERS)
    client = MlflowClient(f"sqlite:///{done.store}")
    for run in runs:
        metrics, rid = run.data.metrics, run.info.run_id
        assert run.data.params["data.val_split"] == "balanced"
        accuracy = {m.step: m.value for m in client.get_metric_history(rid, "test/acc")}
        assert sorted(accuracy) == list(range(1, epochs + 1))
        best_epoch = max(accuracy, key=lambda e: (accuracy[e], -e))
        assert metrics["test_best/acc"] == pytest.approx(accuracy[best_epoch])
        assert metrics["test_best/epoch"] == best_epoch
        assert metrics["test_best/error_pct"] == pytest.approx(100 * (1 - accuracy[best_epoch]))
        # Fully binary from epoch 3 (3 layers, one epoch each): the best of epochs 3 and 4.
        binary = {e: a for e, a in accuracy.items() if e >= 3}
        assert metrics["test_best_binary/acc"] == pytest.approx(max(binary.values()))
        assert metrics["test_best_binary/epoch"] >= 3
        assert metrics["test_best/acc"] >= metrics["test_best_binary/acc"]
        assert "test_final/acc" in metrics
    # The report shows both beside the final test and says which the paper's claims compare.
    out_dir = tmp_path / "report"
    code, out, err = call_entry(report_cli.main, monkeypatch, capsys, "--experiment",
                                "binwrn", "--tracking-uri", f"sqlite:///{done.store}",
                                "--out", out_dir)
    assert code == 0, err
    report = (out_dir / "report.md").read_text()
    assert "best (%)" in report and "best epoch" in report and "best binary (%)" in report
    assert "Paper 3's claims compare what its code logs" in report
    header, *rows = csv.reader((out_dir / "report.csv").read_text().splitlines())
    assert len(rows) == len(MLP_ORDERS)
    best, final = header.index("best (%)"), header.index("ours (%)")
    assert all(float(row[best]) <= float(row[final]) + 1e-9 for row in rows)


@pytest.mark.parametrize("order", ["ascend_official", "descend_official"])
@pytest.mark.parametrize("preset, net", [("p3_vgg5", "vgg5"), ("p3_vgg9", "vgg9"),
                                         ("p3_resnet20", "resnet20"),
                                         ("p3_resnet21", "resnet21")])
def test_the_shipped_guided_orders_are_paper_3s_lists(preset, net, order) -> None:
    cfg = compose([f"experiment={preset}", f"iterative.order={order}"])
    model = build_model(cfg)
    layers = binarizable_names(model)
    numbers = PAPER3_ASCEND[net] if order == "ascend_official" else PAPER3_ASCEND[net][::-1]
    assert list(binarization_order(cfg, model)[0]) == [layers[n - 1] for n in numbers]


def test_the_spec_descend_lists_are_the_ascend_lists_reversed() -> None:
    # Spec 3.6 writes VGG-5's and VGG-9's descend lists out: descend_official gives them.
    assert PAPER3_ASCEND["vgg5"][::-1] == (2, 3, 1, 4, 5)
    assert PAPER3_ASCEND["vgg9"][::-1] == (4, 2, 5, 3, 6, 7, 1, 9, 8)


def test_an_official_guided_order_where_none_is_shipped_is_one_sentence() -> None:
    cfg = compose(["experiment=p3_mlp300", "iterative.order=ascend_official"])
    with pytest.raises(ConfigError, match="vgg5, vgg9, resnet20, resnet21 only.*"
                                          "iterative.order=ascend with a ranking"):
        binarization_order(cfg, build_model(cfg))


def test_resnet21_is_torchvisions_resnet18_with_21_binarizable_layers() -> None:
    import torchvision

    cfg = compose(["experiment=p3_resnet21"])
    model = build_model(cfg)
    layers = binarizable_names(model)
    assert len(layers) == 21 and layers[0] == "conv_in" and layers[-1] == "fc"
    # Spec 3.4: the three downsample 1x1 convs are layers 8, 13 and 18.
    assert [n for n, name in enumerate(layers, 1) if "shortcut" in name] == [8, 13, 18]
    reference = torchvision.models.resnet18()
    ours = [tuple(p.shape) for p in model.parameters()]
    assert ours == [tuple(p.shape) for p in reference.parameters()]  # same layers, same order
    assert cfg.trainer.max_epochs == 67 and cfg.iterative.epochs_per_layer == 2
    assert (cfg.optim.lr, list(cfg.schedule.milestones), cfg.data.batch_size) == (
        0.01, [42, 57], 256)
    logits = model(torch.randint(0, 256, (2, 3, 64, 64)).float())
    assert logits.shape == (2, 1000)
    with pytest.raises(ConfigError, match="model.depth=18 is not allowed"):
        build_model(compose(["experiment=p3_resnet21", "model.depth=18"]))


def _official_cifar(root: Path, per_batch: int) -> ImageSplit:
    """Five small training batches in the official format (and a test batch)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = [int(x) for x in rng.integers(0, 10, per_batch)]
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": batch_labels}))
        if name != "test_batch":
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels += batch_labels
    return ImageSplit(np.concatenate(images), np.asarray(labels, dtype=np.int64))


def _paper3_cfg(root: Path, *more: str):
    return compose(["experiment=p3_vgg5", f"data.root={root}", "data.val_size=20",
                    "data.verify_checksums=false", *more])


def test_the_official_split_holds_out_its_indices_of_the_official_files(tmp_path) -> None:
    train = _official_cifar(tmp_path, per_batch=20)  # 100 images
    held = list(range(99, 79, -1))  # the last 20, listed out of order
    (tmp_path / "cifar10_split0613.json").write_text(json.dumps(
        {"train": [i for i in range(100) if i not in held], "validation": held}))
    fit, validation, rule = split_validation(_paper3_cfg(tmp_path), train)
    assert rule == "official"
    assert np.array_equal(validation.images, train.images[80:])
    assert np.array_equal(fit.labels, train.labels[:80])


@pytest.mark.parametrize("setup, more, why", [
    ("no file", (), "no cifar10_split0613.json"),
    ("limited", ("data.train_limit=60",), "data.train_limit=60 renumbers"),
    ("other size", ("data.val_size=10",), "data.val_size=10 is not the 20 images"),
])
def test_where_the_official_split_cannot_apply_a_balanced_draw_says_why(tmp_path, setup, more,
                                                                        why) -> None:
    train = _official_cifar(tmp_path, per_batch=20)
    if setup != "no file":
        (tmp_path / "cifar10_split0613.json").write_text(json.dumps(
            {"train": list(range(80)), "validation": list(range(80, 100))}))
    _, validation, rule = split_validation(_paper3_cfg(tmp_path, *more), train)
    assert rule.startswith("balanced, not official") and why in rule
    assert len(validation) == (10 if "data.val_size=10" in more else 20)


def _result(net: str, best: float, **params: str):
    from binwrn.report.runs import RunResult

    metrics = {"test_final/error_pct": best + 1.0, "test_best/error_pct": best,
               "test_best/epoch": 3.0}
    return RunResult(run_id=net, name=net, params={"model.bits": "1", **params},
                     labels={"net": net}, final_error=best + 1.0, metrics=metrics,
                     tags={"binwrn.net": net})


def test_only_paper_3_runs_report_the_best_epoch() -> None:
    from binwrn.report.paper_tables import generic_table
    from binwrn.report.rows import group_rows

    paper1 = group_rows((_result("wrn8-1", 20.0),), ("net",))
    assert "best (%)" not in [c.name for c in generic_table(paper1, ("net",)).columns]
    mixed = group_rows((_result("wrn8-1", 20.0), _result("vgg5", 30.0)), ("net",))
    table = generic_table(mixed, ("net",))
    names = [c.name for c in table.columns]
    assert names[-2:] == ["best (%)", "best epoch"]
    assert {row[0]: row[-2:] for row in table.rows}["vgg5"] == (30.0, "3")
    assert "Paper 3's claims compare" in table.note
