"""Test error at the ends of SGDR cycles, per run, beside the official Keras and MATLAB
learning curves of WRN-20-10 with cutout (spec 1.6 and sweep 4.3).

Like for like: MATLAB recomputes the BN statistics before every point of its curve ([M]), so
ours are the `test_recomputed/*` points (tracking/metrics.py). A run from before those were
logged gives its running-average test instead, and its rows say so. (Keras tests with
running averages of momentum 0.01, [K]; no run here trains with that unless bn.momentum says.)
"""

from __future__ import annotations

from binwrn.report.paper import CYCLE_ENDS, KERAS_CURVES, MATLAB_CURVES, reference_curve
from binwrn.report.rows import Row
from binwrn.report.runs import RunResult
from binwrn.report.table_format import Column, Table, difference


def reference_curves(run: RunResult) -> dict[str, dict[int, float] | None]:
    """The Keras and MATLAB curves (test error by epoch) this run can be compared with."""
    settings = (run.bits, run.int_param("model.depth"), run.int_param("model.width"),
                run.params.get("dataset.name"), run.cutout)
    return {"Keras": reference_curve(KERAS_CURVES, *settings),
            "MATLAB": reference_curve(MATLAB_CURVES, *settings)}


def cycle_end_points(run: RunResult) -> tuple[dict[int, float], str]:
    """The run's test error at the epochs it was measured with BN statistics recomputed, and
    "recomputed"; for a run from before those points, its per-epoch test and "running"."""
    if run.recomputed_curve:
        return run.recomputed_curve, "recomputed"
    return run.curve, "running"


def convergence_table(rows: list[Row]) -> Table:
    columns = (Column("run"), Column("epoch", "count"), Column("BN statistics"),
               Column("ours (%)", "error"), Column("Keras (%)", "error"),
               Column("vs Keras", "delta"), Column("MATLAB (%)", "error"),
               Column("vs MATLAB", "delta"))
    table_rows = []
    for row in rows:
        for run in row.runs:
            name = f"{row.text}, seed {run.params.get('seed', '?')}"
            references = reference_curves(run)
            keras, matlab = references["Keras"] or {}, references["MATLAB"] or {}
            points, statistics = cycle_end_points(run)
            for epoch in (e for e in CYCLE_ENDS if e in points):
                ours = points[epoch]
                table_rows.append((name, epoch, statistics, ours, keras.get(epoch),
                                   difference(ours, keras.get(epoch)), matlab.get(epoch),
                                   difference(ours, matlab.get(epoch))))
    return Table("report", "Test error (%) at the ends of SGDR cycles", columns,
                 tuple(table_rows),
                 note="vs: ours minus that curve. Keras: the official notebooks' outputs; "
                      "MATLAB: the stored 1-bit models (spec 1.6). Both are WRN-20-10 with "
                      "cutout, 254 epochs; '-' where the run is not such a net. BN "
                      "statistics: recomputed over the training batches before each point, "
                      "as MATLAB does (test_recomputed/error_pct; the last is the final "
                      "test), or running averages (test/error_pct) for runs that predate "
                      "those points.")
