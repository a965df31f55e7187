"""Reports built from real runs in a real SQLite MLflow store: the rows must be the runs'
final errors (the value logged after BN recomputation, not the epoch's own), seeds must give
mean and spread, paper values and differences must be the spec's, files must be real."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from io import BytesIO
from pathlib import Path

import pytest
from helpers_report import (
    ABLATION_ERRORS,
    EPOCHS,
    FAILED_REASON,
    ablation_sweep,
    curve_value,
    log_child,
    log_sweep,
    new_experiment,
    paper_params,
    recomputed_value,
)
from mlflow import MlflowClient
from PIL import Image

from binwrn.report import report_sweep
from binwrn.report.build import build_report, write_report
from binwrn.report.search import runs_selection

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template) -> tuple[MlflowClient, str, str]:
    """(client, uri, ablation parent id); tests here only read the runs or add artifacts."""
    root = tmp_path_factory.mktemp("report-store")
    shutil.copy(empty_store_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    return client, uri, ablation_sweep(client, new_experiment(client, "binwrn", root / "art"))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(BytesIO(data)) as image:
        image.load()
        assert image.width >= 600 and image.height >= 400, image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, f"{path.name} looks blank"


@pytest.fixture(scope="module")
def ablation_report(store, tmp_path_factory) -> Path:
    _, uri, parent = store
    return report_sweep(uri, parent, tmp_path_factory.mktemp("out") / "abl", log=True)


def test_ablation_rows_are_final_errors_with_mean_and_spread_over_seeds(ablation_report):
    rows = {(r["model.bits"], r["schedule"], r["bn"]): r
            for r in _csv(ablation_report / "report.csv")}
    assert len(rows) == len(ABLATION_ERRORS) == 8
    for (bits, schedule, bn), finals in ABLATION_ERRORS.items():
        row = rows[(str(bits), schedule, bn)]
        if (bits, schedule, bn) == (1, "step", "paper"):
            finals = finals[:1]  # its seed-1 job failed: no result, not a row member
        assert float(row["ours (%)"]) == pytest.approx(statistics.fmean(finals))
        assert int(row["n"]) == len(finals)
        expected_std = statistics.stdev(finals) if len(finals) > 1 else None
        assert (float(row["std"]) if row["std"] else None) == pytest.approx(expected_std,
                                                                             abs=1e-6)
        assert row["BN affine"] == ("learned" if bn == "learned" else "fixed")
    # the skipped job's earlier run counts: 1-bit sgdr paper = mean(23.0, 24.0)
    assert rows[("1", "sgdr", "paper")]["n"] == "2"
    text = (ablation_report / "report.md").read_text()
    assert "| 1 | sgdr | paper | fixed | 23.50 | 0.71 | 2 |" in text
    assert "| 32 | sgdr | paper | fixed | 21.00 | - | 1 |" in text
    assert "**Smoke sweep**" in text


def test_ablation_effects_are_differences_of_row_means(ablation_report):
    def mean(*setting) -> float:
        finals = ABLATION_ERRORS[setting]
        return statistics.fmean(finals[:1] if setting == (1, "step", "paper") else finals)

    effects = {(r["effect"], r["where"]): r for r in _csv(ablation_report / "effects.csv")}
    for bits, name in ((32, "fp32"), (1, "1-bit")):
        for schedule in ("sgdr", "step"):
            row = effects[("BN fixed - learned", f"{name}, {schedule}")]
            expected = mean(bits, schedule, "paper") - mean(bits, schedule, "learned")
            assert float(row["final (pp)"]) == pytest.approx(expected)
            # the curves sit a constant above the final value, so early = final difference
            assert float(row["epoch 2 (pp)"]) == pytest.approx(expected)
            assert row["paper expects"] == "about -3"
        for bn, shown in (("paper", "fixed"), ("learned", "learned")):
            row = effects[("SGDR - step", f"{name}, BN {shown}")]
            assert float(row["final (pp)"]) == pytest.approx(
                mean(bits, "sgdr", bn) - mean(bits, "step", bn))
    assert effects[("lowest 1-bit error", "sgdr, BN fixed")]["paper expects"] == "sgdr, BN fixed"


def test_jobs_summary_lists_every_job_and_why_one_failed(ablation_report):
    jobs = _csv(ablation_report / "jobs.csv")
    assert [j["status"] for j in jobs].count("finished") == 9
    assert [j["status"] for j in jobs].count("skipped") == 1
    (failed,) = [j for j in jobs if j["status"] == "failed"]
    assert failed["reason"] == FAILED_REASON and failed["run"] == ""
    text = (ablation_report / "report.md").read_text()
    assert "11 jobs: 9 finished, 1 skipped, 1 failed" in text and FAILED_REASON in text


def test_figures_are_real_pngs(ablation_report):
    for name in ("error_vs_epoch.png", "gap_vs_width.png", "ablation_bars.png"):
        _check_png(ablation_report / name)
        assert f"]({name})" in (ablation_report / "report.md").read_text()


def test_report_is_logged_on_the_parent_run(store, ablation_report, tmp_path):
    client, _, parent = store
    logged = {Path(a.path).name for a in client.list_artifacts(parent, "report")}
    assert logged == {p.name for p in ablation_report.iterdir()}
    copy = client.download_artifacts(parent, "report/report.md", str(tmp_path))
    assert Path(copy).read_text() == (ablation_report / "report.md").read_text()


def test_table1_shaped_runs_get_the_paper_values_and_differences(tmp_path, fresh_store):
    client = MlflowClient(f"sqlite:///{fresh_store}")
    experiment = new_experiment(client, "t1", tmp_path / "art")
    t1 = {"dataset.name": "cifar10", "model.width": 10, "data.cutout": 18}
    for seed, final in ((0, 3.40), (1, 3.60)):
        log_child(client, experiment, paper_params(**t1, **{"model.bits": 32, "seed": seed}),
                  final)
    log_child(client, experiment, paper_params(**t1), 4.00)
    log_child(client, experiment, paper_params(), 24.00)  # 1-bit 20-4 C100+
    selection = runs_selection(client, f"sqlite:///{fresh_store}", "t1", None)
    assert selection.kind == "table1"
    out = tmp_path / "report"
    write_report(build_report(selection), out)

    rows = _csv(out / "report.csv")
    cells = [(r["weights"], r["net"], r["data"], r["aug"], r["paper (%)"]) for r in rows]
    assert cells == [("32-bit", "20-10", "C10", "++", "3.46"),  # the paper's row order
                     ("1-bit", "20-4", "C100", "+", "23.87"),
                     ("1-bit", "20-10", "C10", "++", "3.92")]
    assert [float(r["ours (%)"]) for r in rows] == pytest.approx([3.50, 24.00, 4.00])
    assert [float(r["diff"]) for r in rows] == pytest.approx([0.04, 0.13, 0.08])
    assert float(rows[0]["std"]) == pytest.approx(statistics.stdev([3.40, 3.60]), abs=1e-6)
    assert [r["n"] for r in rows] == ["2", "1", "1"]
    assert [r["epochs"] for r in rows] == [str(EPOCHS)] * 3
    assert [r["paper ep."] for r in rows] == ["254", "126", "254"]
    assert "| 1-bit | 20-10 | C10 | ++ | 14 | 254 | 4.00 | - | 1 | 3.92 | +0.08 |" in (
        out / "report.md").read_text()

    (gap,) = _csv(out / "gap.csv")  # the C10++ 20-10 pair; the C100 run has no fp32 twin
    assert float(gap["gap (pp)"]) == pytest.approx(0.50)
    assert float(gap["paper gap"]) == pytest.approx(0.46)
    _check_png(out / "gap_vs_width.png")


def test_convergence_sweep_sets_cycle_ends_beside_keras_and_matlab(tmp_path, fresh_store):
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    experiment = new_experiment(client, "binwrn", tmp_path / "art")
    spec = "name: conv\nreport:\n  kind: convergence\n  rows: [model.bits]\n"
    settings = {"dataset.name": "cifar10", "model.width": 10, "data.cutout": 18}
    children = [({"model.bits": bits, "seed": 0},
                 paper_params(**settings, **{"model.bits": bits}), final, None)
                for bits, final in ((32, 10.0), (1, 12.0))]
    parent = log_sweep(client, experiment, "conv", spec, children)
    out = report_sweep(uri, parent, tmp_path / "conv", log=False)

    rows = {(r["run"], r["epoch"]): r for r in _csv(out / "report.csv")}
    assert sorted({epoch for _, epoch in rows}, key=int) == ["2", "6", "14"]  # ends reached
    fp32_start = rows[("fp32, seed 0", "2")]
    # Like for like with MATLAB's curve: the point measured with BN statistics recomputed.
    assert fp32_start["BN statistics"] == "recomputed"
    assert float(fp32_start["ours (%)"]) == pytest.approx(recomputed_value(10.0, 2))
    assert float(fp32_start["Keras (%)"]) == pytest.approx(100 - 76.61)
    assert float(fp32_start["vs Keras"]) == pytest.approx(
        recomputed_value(10.0, 2) - (100 - 76.61))
    assert fp32_start["MATLAB (%)"] == ""  # MATLAB models are 1-bit only
    one_bit_end = rows[("1-bit, seed 0", "14")]
    assert float(one_bit_end["ours (%)"]) == pytest.approx(12.0)  # the final, not the epoch's
    assert float(one_bit_end["MATLAB (%)"]) == pytest.approx(100 - 91.54)
    assert float(one_bit_end["Keras (%)"]) == pytest.approx(100 - 91.46)
    assert client.list_artifacts(parent, "report") == []  # log=False


def test_convergence_of_a_run_from_before_recomputed_points_says_running(tmp_path,
                                                                          fresh_store):
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    experiment = new_experiment(client, "binwrn", tmp_path / "art")
    spec = "name: conv\nreport:\n  kind: convergence\n  rows: [model.bits]\n"
    params = paper_params(**{"dataset.name": "cifar10", "model.width": 10, "data.cutout": 18})
    parent = client.create_run(experiment, tags={"binwrn.sweep_role": "parent"}).info.run_id
    old = log_child(client, experiment, params, 12.0, legacy=True)
    jobs = [{"job": "job_000", "labels": {"model.bits": 1}, "overrides": [],
             "config_hash": "h", "run_id": old, "status": "skipped", "reason": "finished"}]
    client.log_text(parent, spec, "sweep/spec.yaml")
    client.log_text(parent, json.dumps(jobs), "sweep/jobs.json")
    client.set_terminated(parent, "FINISHED")
    rows = {r["epoch"]: r for r in _csv(report_sweep(uri, parent, tmp_path / "c", log=False)
                                        / "report.csv")}
    assert rows["2"]["BN statistics"] == "running"
    assert float(rows["2"]["ours (%)"]) == pytest.approx(curve_value(12.0, 2))
    assert float(rows["14"]["ours (%)"]) == pytest.approx(12.0)  # its final, logged last


def test_a_filter_without_fp32_twins_says_the_gap_figure_is_skipped(store, tmp_path):
    client, uri, _ = store
    selection = runs_selection(client, uri, None, "params.`model.bits` = '1'")
    assert selection.kind == "generic"
    assert {r.bits for r in selection.runs} == {1} and len(selection.runs) == 5
    assert selection.row_keys == ("bn.learn_affine", "schedule.name")
    write_report(build_report(selection), tmp_path)
    assert "gap_vs_width.png is not drawn" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "gap_vs_width.png").exists() and not (tmp_path / "gap.csv").exists()
    _check_png(tmp_path / "final_error_bars.png")


def test_experiment_mode_leaves_out_sweep_parents(store):
    client, uri, _ = store
    selection = runs_selection(client, uri, "binwrn", None)
    assert len(selection.runs) == 10  # 9 job runs and the earlier sweep's; no parent
    assert all("model.bits" in r.params for r in selection.runs)


def test_paper_2_rows_get_paper_2s_numbers_and_bn_rows_table_1s(tmp_path, fresh_store):
    uri = f"sqlite:///{fresh_store}"
    client = MlflowClient(uri)
    experiment = new_experiment(client, "binwrn", tmp_path / "art")
    spec = ("name: p2\nreport:\n  kind: generic\n  rows: [dataset, model.bits, model.norm, "
            "model.width, model.temperature]\n")
    net = {"data.cutout": 18, "schedule.name": "cosine"}
    cases = [  # (dataset, bits, norm, width, T, our final error)
        ("cifar100", 1, "shifted_relu", 10, 25.0, 22.0),   # paper 2: 100 - 78.41
        ("cifar100", 32, "shifted_relu", 10, 25.0, 20.5),  # paper 2: 100 - 79.37
        ("cifar10", 1, "shifted_relu", 10, 10.0, 4.0),     # T axis: the paper used 40
        ("cifar10", 1, "shifted_relu", 4, 40.0, 6.0),      # width axis: no paper number
        ("cifar10", 1, "batchnorm", 10, None, 3.9),        # Table 1's C10++ 3.92
    ]
    children = []
    for dataset, bits, norm, width, t, final in cases:
        labels = {"dataset": dataset, "model.bits": bits, "model.norm": norm,
                  "model.width": width, "seed": 0}
        params = paper_params(**net, **{"dataset.name": dataset, "model.bits": bits,
                                        "model.norm": norm, "model.width": width,
                                        "model.temperature": t})
        children.append((labels, params, final, None))
    out = report_sweep(uri, log_sweep(client, experiment, "p2", spec, children),
                       tmp_path / "p2", log=False)

    rows = {(r["dataset"], r["model.bits"], r["model.norm"], r["model.width"],
             r["model.temperature"]): r for r in _csv(out / "report.csv")}
    assert {k: v["paper (%)"] for k, v in rows.items()} == {
        ("cifar100", "1", "shifted_relu", "10", "25.0"): "21.59",
        ("cifar100", "32", "shifted_relu", "10", "25.0"): "20.63",
        ("cifar10", "1", "shifted_relu", "10", "10.0"): "",
        ("cifar10", "1", "shifted_relu", "4", "40.0"): "",
        ("cifar10", "1", "batchnorm", "10", "None"): "3.92",
    }
    assert float(rows[("cifar100", "1", "shifted_relu", "10", "25.0")]["diff"]) == \
        pytest.approx(22.0 - 21.59)
    (gap,) = _csv(out / "gap.csv")  # the C100 shifted-ReLU pair, both at T=25
    assert float(gap["gap (pp)"]) == pytest.approx(1.5)
    assert float(gap["paper gap"]) == pytest.approx(79.37 - 78.41)
