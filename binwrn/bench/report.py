"""The bench's table, in the terminal (rich) and as Markdown for docs/benchmarks.md."""

from __future__ import annotations

from binwrn.bench.run import Result, one_bit_over_fp32


def _ms(spread) -> str:
    return f"{spread.median:.1f} ({spread.low:.1f}-{spread.high:.1f})"


def rows(results: list[Result], peak_tflops: float | None) -> list[list[str]]:
    table = []
    for r in results:
        c, ratios = r.case, r.ratios()
        low, high = ratios.interval()
        utilisation = f"{100 * r.tflops() / peak_tflops:.1f} %" if peak_tflops else "-"
        table.append([
            f"{c.depth}-{c.width}", "1-bit" if c.bits == 1 else "fp32",
            f"{1000.0 * c.batch_size / r.ms('binwrn').median:,.0f}", _ms(r.ms("binwrn")),
            _ms(r.ms("plain")), f"{ratios.median:.3f}", f"{low:.3f}-{high:.3f}",
            f"{ratios.low:.3f}-{ratios.high:.3f}", str(len(ratios.values)),
            f"{r.tflops():.3f}", utilisation, f"{r.binwrn.peak_memory_mb:,.0f}",
        ])
    return table


HEADER = ["net", "weights", "images/s", "ms/step binwrn (min-max)", "ms/step plain (min-max)",
          "binwrn / plain", "95 % CI", "range", "rounds", "model TFLOP/s", "of peak",
          "peak memory (MB)"]


def markdown(results: list[Result], env: dict, command: str, peak: float | None,
             first_step_s: float | None, from_whole_run: bool = False) -> str:
    lines = [f"## {env['device']}, {env['date']}", "",
             f"Command: `{command}`", "",
             f"torch {env['torch']}, lightning {env['lightning']}, binwrn {env['binwrn']}, "
             f"Python {env['python']}, {env['threads']} torch threads; batch "
             f"{results[0].case.batch_size}, {results[0].case.steps} timed steps after "
             f"{results[0].case.warmup} warm-up steps per round, rounds of plain then binwrn "
             "back to back (medians; binwrn / plain is the median of each round's ratio, with "
             "its 95 % interval and range); measured peak "
             f"{f'{peak:.0f} TFLOP/s (bf16 matmul)' if peak else '-: a CPU'}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results, peak)]
    lines += ["", "| net | 1-bit / fp32 step time (binwrn path) |", "|---|---|"]
    lines += [f"| {d}-{w} | {ratio:.3f} |" for (d, w), ratio in one_bit_over_fp32(results).items()]
    lines += ["", startup_line(first_step_s, from_whole_run), ""]
    return "\n".join(lines)


def startup_line(first_step_s: float | None, from_whole_run: bool = False) -> str:
    startup = f"{first_step_s:.1f} s" if first_step_s is not None else "not measured"
    if from_whole_run:
        return (f"Command to first training step (the whole-run row's `binwrn-run`, median): "
                f"{startup}.")
    return (f"Command to first training step (`binwrn-run experiment=smoke dataset=digits`, "
            f"data cache warm): {startup}.")
