"""Paper 3's sensitivity pre-training (spec 3.6): held-out split, one-layer runs, ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient

from binwrn.bench.measure import synthetic_images
from binwrn.configuration.compose import compose
from binwrn.configuration.sensitivity import sensitivity_spec
from binwrn.data.validation import holdout_split
from binwrn.errors import ConfigError
from binwrn.models.layer_order import resolve_order
from binwrn.train.iterative import LayerByLayerBinarization
from binwrn.train.sensitivity import METRIC, sensitivity


def test_holdout_is_class_balanced_disjoint_and_fixed_by_the_seed() -> None:
    train = synthetic_images(1000)
    train.images[:, 0, 0, 0] = np.arange(1000) % 256  # tell images apart
    train.images[:, 0, 0, 1] = np.arange(1000) // 256
    fit, val = holdout_split(train, 100, seed=0)
    assert len(fit) == 900 and len(val) == 100
    assert np.bincount(val.labels, minlength=10).tolist() == [10] * 10

    def ids(split) -> set[int]:
        pixels = split.images[:, 0, 0, :2].astype(np.int64)
        return set((pixels[:, 0] + 256 * pixels[:, 1]).tolist())

    assert ids(fit).isdisjoint(ids(val)) and len(ids(fit) | ids(val)) == 1000
    again, other = holdout_split(train, 100, seed=0)[1], holdout_split(train, 100, seed=1)[1]
    assert ids(again) == ids(val) and ids(other) != ids(val)


@pytest.mark.parametrize("count", [0, 95, 1000])
def test_a_split_that_cannot_be_balanced_is_refused(count: int) -> None:
    with pytest.raises(ConfigError, match=f"data.val_size={count} does not split"):
        holdout_split(synthetic_images(1000), count, seed=0)


def test_the_last_rule_holds_out_the_last_images_as_paper_3_does_for_mnist() -> None:
    train = synthetic_images(1000)
    fit, val = holdout_split(train, 50, rule="last")
    assert np.array_equal(val.images, train.images[950:])
    assert np.array_equal(fit.labels, train.labels[:950])
    with pytest.raises(ConfigError, match="use below 1000"):
        holdout_split(train, 1000, rule="last")


def test_a_sensitivity_run_keeps_only_its_first_layer_binary() -> None:
    # epochs_per_layer = the budget: the rotated order's first layer alone (spec 3.6).
    only_first = LayerByLayerBinarization(["b", "a", "c"], epochs_per_layer=5)
    assert [only_first.binary_at(e) for e in range(5)] == [["b"]] * 5


@pytest.mark.slow
def test_sensitivity_ranks_every_layer_and_feeds_ascend(tmp_path) -> None:
    cfg = compose(["experiment=smoke", "dataset=digits", "trainer.accelerator=cpu",
                   "trainer.max_epochs=1", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                   f"tracking.artifact_root={tmp_path}/art", f"data.cache_dir={tmp_path}/c"])
    out = tmp_path / "ranking.json"
    record = sensitivity(*sensitivity_spec(cfg, val_size=100), out=out)
    on_disk = json.loads(out.read_text())
    layers = on_disk["layers"]
    assert len(layers) == 8 and set(on_disk["accuracy"]) == set(layers)
    acc = on_disk["accuracy"]
    assert [acc[n] for n in on_disk["ascend"]] == sorted(acc.values(), reverse=True)
    assert on_disk["descend"] == on_disk["ascend"][::-1]
    assert resolve_order("ascend", layers, 0, str(out)) == on_disk["ascend"]
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    history = client.get_metric_history(record["run_id"], METRIC)
    assert [(m.step, m.value) for m in history] == [(i, acc[n]) for i, n in enumerate(layers)]
    logged = client.download_artifacts(record["run_id"], "sensitivity/ranking.json", str(tmp_path))
    assert json.loads(open(logged).read()) == on_disk
    with pytest.raises(ConfigError, match="iterative.order=forward does not apply"):
        sensitivity_spec(compose(["iterative.order=forward"]), 100)
