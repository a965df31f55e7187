"""Tables and figures from tracked runs, set beside the paper's numbers (spec 1.6).

Data flows one way: MLflow runs -> `Selection` (`sweep` reads a sweep's parent run, its
`sweep/spec.yaml` and `sweep/jobs.json`; `search` takes an experiment or a filter) ->
`rows` (seeds of one setting grouped, fp32/1-bit pairs) -> `Table`s (`table_format`) by
report kind (`tables` picks them: Table 1, generic and gap tables in `paper_tables`, Table 2
in `table2`, `ablation`, `convergence`, `sensitivity`) and `figures` -> files (`build`) ->
the terminal (`show`, used by `cli` only). `paper` holds the paper's numbers as data.

`report_sweep` is what a sweep driver calls when its sweep ends.
"""

__all__ = ["report_sweep"]


def __getattr__(name: str):
    # Loaded on first use: MLflow and matplotlib take seconds to import, and binwrn-report
    # should answer --help and a misused option before paying for them.
    if name == "report_sweep":
        from binwrn.report.build import report_sweep

        return report_sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
