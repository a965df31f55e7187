"""PNG figures with matplotlib's object API on the Agg canvas: no pyplot state and no
display, so a report can be drawn on a headless machine or from inside a sweep driver."""

from __future__ import annotations

from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from binwrn.report.convergence import reference_curves
from binwrn.report.paper import CYCLE_ENDS, FIG1_GAPS
from binwrn.report.paper_tables import DATASETS, TABLE1_PARAMS
from binwrn.report.rows import BitsPair, Row, label_text, settings_text, varying_settings

DPI = 110


def _colour(index: int, count: int):
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return palette(index % palette.N)


def _axes(width: float, height: float):
    """A figure on its own Agg canvas (never pyplot's global one) and its axes."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def error_vs_epoch(rows: list[Row], title: str, path: Path) -> Path:
    """Every run's test error by epoch: colour per row, solid fp32, dashed 1-bit (running BN
    averages), dots where BN statistics were recomputed first (the points set beside the
    official curves, crosses), dotted verticals after the epochs where SGDR restarted."""
    return _save(error_vs_epoch_figure(rows, title), path)


def error_vs_epoch_figure(rows: list[Row], title: str) -> Figure:
    fig, ax = _axes(10, 5.5)
    handles, referenced = [], set()
    for i, row in enumerate(rows):
        colour = _colour(i, len(rows))
        if len(rows) > 1:  # a colour key, without a line style of its own
            handles.append(Patch(color=colour, label=row.text))
        for run in row.runs:
            epochs = sorted(run.curve)
            ax.plot(epochs, [run.curve[e] for e in epochs], color=colour, linewidth=1.3,
                    linestyle="--" if run.bits == 1 else "-")
            points = sorted(run.recomputed_curve)
            ax.plot(points, [run.recomputed_curve[e] for e in points], "o", color=colour, ms=4)
            for (source, curve), marker in zip(reference_curves(run).items(), "x+", strict=True):
                if curve and (source, i) not in referenced:  # a row's runs share settings
                    referenced.add((source, i))
                    shown = [e for e in CYCLE_ENDS if e <= max(epochs, default=0)]
                    ax.plot(shown, [curve[e] for e in shown], marker, color=colour, ms=8)
    restarts = sorted({e for row in rows for run in row.runs for e in run.restarts})
    for epoch in restarts:
        ax.axvline(epoch, color="0.55", linestyle=":", linewidth=1)
    # A key for each line style drawn, and only those.
    drawn_bits = {run.bits == 1 for row in rows for run in row.runs}
    handles += [Line2D([], [], color="k", linestyle=style, label=label)
                for one_bit, style, label in ((False, "-", "fp32"), (True, "--", "1-bit"))
                if one_bit in drawn_bits]
    if any(run.recomputed_curve for row in rows for run in row.runs):
        handles.append(Line2D([], [], color="k", marker="o", linestyle="", ms=4,
                              label="BN statistics recomputed"))
    if restarts:
        handles.append(Line2D([], [], color="0.55", linestyle=":", label="SGDR warm restart"))
    if referenced:
        handles += [Line2D([], [], color="k", marker=m, linestyle="", label=f"{s} (paper)")
                    for s, m in (("Keras", "x"), ("MATLAB", "+"))]
    ax.set(xlabel="epoch", ylabel="test error (%)", title=f"{title}: test error vs epoch")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def gap_vs_width(pairs: list[BitsPair], title: str, path: Path) -> Path:
    """Our 1-bit minus fp32 gaps by width, over the paper's Fig. 1 points (spec 1.6)."""
    fig, ax = _axes(8, 5.5)
    # A line joins pairs that differ in width alone.
    others = varying_settings(pairs, ignore=TABLE1_PARAMS)
    series: dict[str, list[tuple[float, float]]] = {}
    for pair in pairs:
        run = pair.sample
        dataset = run.params.get("dataset.name", "?")
        name = (f"ours: {DATASETS.get(dataset, dataset)} depth {run.params.get('model.depth')}"
                f"{' cutout' if run.cutout else ''}")
        name += f" ({settings_text(pair, others)})" if others else ""
        series.setdefault(name, []).append((float(run.params.get("model.width", "nan")),
                                            pair.gap))
    for i, (name, points) in enumerate(series.items()):
        points.sort()
        ax.plot(*zip(*points, strict=True), "o-", color=_colour(i, len(series)), label=name)
    datasets = list(dict.fromkeys(p.dataset for p in FIG1_GAPS))
    for point in FIG1_GAPS:
        colour = colormaps["Set2"](datasets.index(point.dataset))
        ax.plot(point.width, point.gap, "s", mfc="none", mec=colour, ms=9)
        ax.annotate(f"{point.dataset} {point.note}".strip(), (point.width, point.gap),
                    textcoords="offset points", xytext=(6, 4), fontsize="x-small", color="0.3")
    ax.axhline(0, color="0.5", linewidth=0.8)
    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], marker="s", mfc="none", mec="0.3", linestyle="", label="paper Fig. 1")]
    ax.legend(handles=handles, fontsize="small")
    ax.set(xlabel="width k (stages of 16k, 32k, 64k channels)",
           ylabel="1-bit minus fp32 test error (percentage points)",
           title=f"{title}: cost of 1-bit weights vs width")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def error_bars(rows: list[Row], title: str, path: Path) -> Path:
    """Final test error per row (mean, std over seeds as whiskers), grouped by all row keys
    but the last, which picks the bar's colour (for Fig. 6: bits x schedule, then BN); with
    one row key, one bar per row."""
    split = max(len(rows[0].label) - 1, 1)
    groups = list(dict.fromkeys(row.label[:split] for row in rows))
    hues = list(dict.fromkeys(row.label[split:] for row in rows))
    width = 0.8 / len(hues)
    fig, ax = _axes(max(6.0, 1.4 * len(groups) + 2), 5)
    for h, hue in enumerate(hues):
        members = [(groups.index(row.label[:split]), row) for row in rows
                   if row.label[split:] == hue]
        xs = [g + (h - (len(hues) - 1) / 2) * width for g, _ in members]
        stats = [row.stats for _, row in members]
        bars = ax.bar(xs, [s[0] for s in stats], width * 0.95, yerr=[s[1] or 0 for s in stats],
                      capsize=3, color=_colour(h, len(hues)),
                      label=", ".join(label_text(k, v) for k, v in hue) or "final test error")
        ax.bar_label(bars, labels=[f"{s[0]:.2f}" for s in stats], fontsize="x-small",
                     padding=2)
    ax.set_xticks(range(len(groups)),
                  [", ".join(label_text(k, v) for k, v in g) or "runs" for g in groups],
                  fontsize="small", rotation=20 if len(groups) > 4 else 0)
    ax.set(ylabel="final test error (%)", title=f"{title}: final test error per row")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
