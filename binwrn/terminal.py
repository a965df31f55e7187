"""What a person sees: a line of settings at start (the whole config with verbose=true), a
closing table at the end (rich), and a table of a multirun's jobs side by side."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

console = Console(stderr=False)
errors = Console(stderr=True)


def show_config(yaml_text: str) -> None:
    console.rule("[bold]binwrn-run: resolved config")
    console.print(Syntax(yaml_text, "yaml", theme="ansi_dark", background_color="default"))


def show_settings(name: str, cfg, precision: str, output_dir, job: int | None,
                  held_out: str | None = None) -> None:
    """One line per run: what trains, for how long, how, and where its files go; `held_out`:
    how its validation images were drawn (the param data.val_split), where it holds some."""
    epochs, o = cfg.trainer.max_epochs, cfg.optim
    how = [f"{epochs} epoch{'s' * (epochs != 1)}", f"batch {cfg.data.batch_size}",
           f"{o.get('name', 'sgd')} lr {o.lr:g}", f"seed {cfg.seed}",
           "deterministic" if cfg.deterministic else "not deterministic", f"precision {precision}"]
    if held_out is not None:
        how.append(f"{cfg.data.val_size} validation images ({held_out} split)")
    prefix = f"job {job}: " if job is not None else ""
    console.print(f"[bold]{prefix}{escape(name)}[/]: {', '.join(how)}; files in {output_dir}",
                  soft_wrap=True, highlight=False)


def program() -> str:
    """The command this process was started as (binwrn-run, binwrn-sweep, ...), which its
    warnings name; "binwrn" where it was not started by one of them."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("binwrn") else "binwrn"


def show_error(message: str, prog: str = "binwrn-run") -> None:
    errors.print(f"[bold red]{prog}: error:[/] {escape(message)}", highlight=False,
                 soft_wrap=True)


def show_warning(message: str) -> None:
    errors.print(f"[bold yellow]{program()}: warning:[/] {message}", highlight=False,
                 soft_wrap=True)


def print_text(text: str) -> None:
    """`text` on stdout; a reader that stops early (`binwrn-run --help | head -1`) ends it
    quietly: the rest goes to /dev/null, where Python's own flush at exit cannot fail."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.3f} MiB"


def show_result(result: dict) -> None:
    table = Table(title=f"binwrn-run: {result['run_name']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("test error", f"{result['test_final/error_pct']:.2f} %  (acc "
                       f"{result['test_final/acc']:.4f} on {result['test_images']:,} images)"),
        *([("top-5 error", f"{result['test_final/top5_error_pct']:.2f} %")]
          if "test_final/top5_error_pct" in result else []),
        ("weights", f"{result['model/conv_weights']:,} "
                         f"({result['model/binary_weights']:,} 1-bit)"),
        ("weights on disk", f"{_mib(result['model/packed_bytes'])} packed vs "
                            f"{_mib(result['model/fp32_bytes'])} fp32 "
                            f"(x{result['model/compression']:.1f})"),
        ("wall time", f"{result['wall_s']:.1f} s"),
        *([("time by phase", phase_line(result["phases"]))] if result.get("phases") else []),
        ("run id", result["run_id"]),
        ("stored in", result["tracking_uri"]),
        ("local outputs", result["output_dir"]),
    ]
    if "val/acc" in result:  # data.val_size: the held-out split (paper 3)
        rows.insert(1, ("validation error", f"{result['val/error_pct']:.2f} %  (acc "
                                            f"{result['val/acc']:.4f}, held out of training)"))
    for view in sorted({k.split("/")[0] for k in result if k.endswith("crop/top1_error_pct")}):
        rows.insert(1, (f"{view.removeprefix('test_')} test error",  # ImageNet's multi-crop
                        f"top-1 {result[f'{view}/top1_error_pct']:.2f} %, "
                        f"top-5 {result[f'{view}/top5_error_pct']:.2f} %"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    console.print(f"Browse it: [bold]make ui[/], then open {result['ui_link']}", soft_wrap=True)


# The phases of train/phase_clock.py, in the order a run meets them.
PHASE_NAMES = {"to_first_step": "start-up", "loop": "loop", "epoch_tests": "epoch tests",
               "recomputed_tests": "recomputed tests", "epoch_ends": "epoch ends",
               "bn_recompute": "BN recompute", "final_test": "final test",
               "artifacts": "artifacts"}


def phase_line(metrics: dict[str, float]) -> str:
    """`start-up 8.1 s, loop 35.0 s, ...` from a run's time/* metrics."""
    return ", ".join(f"{name} {metrics[f'time/{key}_s']:.1f} s"
                     for key, name in PHASE_NAMES.items() if f"time/{key}_s" in metrics)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def show_job_table(outcomes: list[dict]) -> None:
    """A multirun's jobs side by side: the settings that differ between them, status, test
    error, time and run name (outcome.json of each job)."""
    settings = [dict(o.split("=", 1) for o in out.get("overrides", []) if "=" in o)
                for out in outcomes]
    keys = [k for k in dict.fromkeys(k for s in settings for k in s)
            if len({s.get(k) for s in settings}) > 1]
    table = Table(title=f"binwrn-run: {len(outcomes)} jobs")
    for column in ("job", *keys, "status", "test error", "time"):
        table.add_column(column, justify="right" if column in ("test error", "time") else "left")
    table.add_column("run name / reason", overflow="fold")
    for out, setting in zip(outcomes, settings, strict=True):
        error = out.get("test_error_pct")
        failed = out["status"] != "finished"
        table.add_row(str(out.get("number", "")), *(escape(setting.get(k, "")) for k in keys),
                      f"[bold red]{out['status']}[/]" if failed else "[green]finished[/]",
                      "" if error is None else f"{error:.2f} %", _duration(out.get("seconds")),
                      escape((out.get("reason") if failed else out.get("run_name")) or ""))
    console.print(table)


def show_sweep_summary(name: str, outcomes: list, parent_id: str, link: str) -> None:
    """One row per job: what it stands for, finished / skipped / failed, and why."""
    style = {"finished": "green", "skipped": "cyan", "failed": "bold red", "not run": "yellow"}
    table = Table(title=f"binwrn-sweep: {name}")
    for column in ("job", "labels", "status", "test error", "run / reason"):
        table.add_column(column)
    for o in outcomes:
        labels = " ".join(f"{k}={v}" for k, v in o.labels.items())
        error = f"{o.test_error_pct:.2f} %" if o.test_error_pct is not None else ""
        detail = o.reason if o.status in ("failed", "not run") else (o.run_id or "")
        table.add_row(o.job, escape(labels), f"[{style[o.status]}]{o.status}[/]", error,
                      escape(detail or ""))
    console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in style}
    not_run = f", {counts['not run']} not run" if counts["not run"] else ""
    console.print(f"{counts['finished']} finished, {counts['skipped']} skipped (identical "
                  f"config already FINISHED), {counts['failed']} failed{not_run}; parent run "
                  f"{parent_id}. Browse it: [bold]make ui[/], then open {link}", soft_wrap=True)


def console_note(message: str) -> None:
    console.print(message, soft_wrap=True, highlight=False)
