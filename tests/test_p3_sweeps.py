"""Paper 3's sweeps: the ranking `iterative.ranking=store` reads back from single-layer runs,
and (slow) the shipped p3_sensitivity and p3_orders sweeps, cut to the MLP "300", run end to
end on MNIST files the test writes: nested runs, ascend and descend read from the store, the
sensitivity report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from helpers_data import write_mnist_idx
from mlflow import MlflowClient

from binwrn.configuration.build import binarization_order, build_model
from binwrn.configuration.compose import compose, sweeps_dir
from binwrn.configuration.identity import network_key
from binwrn.errors import ConfigError
from binwrn.tracking.sensitivity_runs import NETWORK_TAG, stored_accuracy

LAYERS = ["fc1", "fc2", "fc3"]


def _single_run(client: MlflowClient, experiment: str, network: str, layer: str,
                acc: float | None, status: str = "FINISHED") -> None:
    run = client.create_run(experiment, tags={NETWORK_TAG: network})
    client.log_param(run.info.run_id, "iterative.order", "single")
    client.log_param(run.info.run_id, "iterative.layer", layer)
    if acc is not None:
        client.log_metric(run.info.run_id, "val/acc", acc)
    client.set_terminated(run.info.run_id, status)


def test_store_ranking_takes_each_layers_newest_finished_run(fresh_store: Path) -> None:
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("binwrn")
    cfg = compose(["experiment=p3_mlp300", "iterative.order=ascend", "iterative.ranking=store",
                   f"tracking.uri={uri}"])
    key = network_key(cfg)
    assert key == "mnist-mlp300-100-scale_none"
    for layer, acc in (("fc1", 0.3), ("fc2", 0.9), ("fc3", 0.5), ("fc1", 0.95)):
        _single_run(client, experiment, key, layer, acc)  # fc1's newer run wins: 0.95
    _single_run(client, experiment, key, "fc3", 0.99, status="FAILED")  # never counted
    _single_run(client, experiment, "cifar10-vgg5-scale_none", "fc2", 0.01)  # another net
    assert stored_accuracy(uri, "binwrn", key, LAYERS) == {"fc1": 0.95, "fc2": 0.9,
                                                            "fc3": 0.5}
    model = build_model(cfg)
    assert binarization_order(cfg, model, uri)[0] == ("fc1", "fc2", "fc3")
    cfg.iterative.order = "descend"
    assert binarization_order(cfg, model, uri)[0] == ("fc3", "fc2", "fc1")
    with pytest.raises(ConfigError, match="no finished sensitivity run of fc1, fc2, fc3 for "
                       "mnist-mlp784-784-scale_none.*SWEEP=p3_sensitivity"):
        stored_accuracy(uri, "binwrn", "mnist-mlp784-784-scale_none", LAYERS)


def _mlp300_only(name: str, tmp: Path, keep_orders: tuple | None = None) -> Path:
    """The shipped sweep with only its MLP "300" blocks (and, for p3_orders, fewer orders)."""
    spec = yaml.safe_load((sweeps_dir() / f"{name}.yaml").read_text())
    blocks = [b for b in spec["blocks"] if "experiment=p3_mlp300" in b["overrides"]]
    if keep_orders:
        for block in blocks:
            block["grid"]["iterative.order"] = [o for o in block["grid"]["iterative.order"]
                                                if o in keep_orders]
    spec["blocks"] = [b for b in blocks if all(b["grid"].values())]
    path = tmp / f"{name}.yaml"
    path.write_text("# cut from the shipped file\n" + yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
def test_p3_sweeps_smoke_on_mnist_rank_from_the_store_and_report(tmp_path: Path) -> None:
    from binwrn.report import report_sweep
    from binwrn.sweeps.driver import SweepRequest, run_sweep
    from binwrn.sweeps.spec import load_sweep

    write_mnist_idx(tmp_path / "mnist", n_train=300, n_test=200, compressed=(False,))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["dataset=mnist", f"data.root={tmp_path / 'mnist'}", "data.verify_checksums=false",
            f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path / 'artifacts'}"]

    def sweep(name: str, keep: tuple | None = None, report: bool = True) -> tuple[str, list]:
        spec = load_sweep(str(_mlp300_only(name, tmp_path, keep)), tmp_path)
        request = SweepRequest(spec, smoke=True, overrides=args, root=tmp_path / "outputs")
        out = tmp_path / "reports" / name
        parent, outcomes, _ = run_sweep(
            request, (lambda u, p: report_sweep(u, p, out)) if report else None)
        assert [o.status for o in outcomes] == ["finished"] * len(outcomes), outcomes
        return parent, outcomes

    sensitivity_parent, singles = sweep("p3_sensitivity")
    client = MlflowClient(uri)
    runs = {o.labels["iterative.layer"]: client.get_run(o.run_id) for o in singles}
    assert sorted(runs) == LAYERS
    for number, layer in enumerate(LAYERS, start=1):
        run = runs[layer]
        assert run.data.tags["mlflow.parentRunId"] == sensitivity_parent
        assert run.data.tags["binwrn.layer_number"] == str(number)
        assert run.data.tags[NETWORK_TAG] == "mnist-mlp300-100-scale_none-smoke"
        assert run.data.params["data.val_size"] == "100"  # the last 100 of the 300
    accuracy = {layer: runs[layer].data.metrics["val/acc"] for layer in LAYERS}
    ascend = sorted(LAYERS, key=lambda n: (-accuracy[n], LAYERS.index(n)))
    with (tmp_path / "reports" / "p3_sensitivity" / "report.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [row["layer"] for row in table] == LAYERS
    assert [int(row["our rank"]) for row in table] == [ascend.index(n) + 1 for n in LAYERS]
    assert [float(row["val error (%)"]) for row in table] == pytest.approx(
        [100 * (1 - accuracy[n]) for n in LAYERS], abs=1e-4)

    # The generic report and the fixed orders are tested elsewhere (test_sweep_end_to_end,
    # test_iterative): here the two orders that need the store.
    orders_parent, jobs = sweep("p3_orders", keep=("ascend", "descend"), report=False)
    assert [o.labels["iterative.order"] for o in jobs] == ["ascend", "descend"]
    for outcome in jobs:
        used = json.loads(Path(client.download_artifacts(
            outcome.run_id, "iterative/order.json", str(tmp_path))).read_text())["order"]
        assert used == (ascend if outcome.labels["iterative.order"] == "ascend" else ascend[::-1])
        assert client.get_run(outcome.run_id).data.tags["mlflow.parentRunId"] == orders_parent
