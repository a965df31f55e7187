"""Each run's own figure (figures/curves.png) and the error-vs-epoch legend, which names only
the line styles that are drawn."""

from __future__ import annotations

from binwrn.report.figures import error_vs_epoch_figure
from binwrn.report.rows import BITS, Row
from binwrn.report.runs import RunResult


def _run(bits: int, restarts: tuple[int, ...] = ()) -> RunResult:
    return RunResult(run_id=f"r{bits}", name=f"digits-wrn10-1-{bits}", final_error=5.0,
                     params={"model.bits": str(bits), "dataset.name": "digits"}, labels={},
                     curve={1: 40.0, 2: 20.0, 3: 5.0}, restarts=restarts)


def _legend(rows: list[Row]) -> list[str]:
    fig = error_vs_epoch_figure(rows, "t")
    return [text.get_text() for text in fig.axes[0].get_legend().get_texts()]


def test_legend_names_only_the_line_styles_drawn() -> None:
    """One row (a run's own figure): no colour key; several: a colour patch per row."""
    assert _legend([Row(((BITS, 32),), (_run(32),))]) == ["fp32"]
    one_bit = _legend([Row(((BITS, 1),), (_run(1, restarts=(2,)),))])
    assert one_bit == ["1-bit", "SGDR warm restart"]
    both = _legend([Row((("seed", 0),), (_run(32),)), Row((("seed", 1),), (_run(1),))])
    assert both == ["seed=0", "seed=1", "fp32", "1-bit"]
