"""The bench's table, in the terminal (rich) and as Markdown for docs/benchmarks.md."""

from __future__ import annotations

from binwrn.bench.run import Result, one_bit_over_fp32


def rows(results: list[Result], peak_tflops: float | None) -> list[list[str]]:
    table = []
    for r in results:
        c = r.case
        utilisation = f"{100 * r.tflops() / peak_tflops:.1f} %" if peak_tflops else "-"
        table.append([
            f"{c.depth}-{c.width}", "1-bit" if c.bits == 1 else "fp32",
            f"{r.binwrn.images_per_s(c.batch_size):,.0f}", f"{r.binwrn.ms_per_step:.1f}",
            f"{r.plain.ms_per_step:.1f}", f"{r.ratio:.3f}", f"{r.tflops():.3f}", utilisation,
            f"{r.binwrn.peak_memory_mb:,.0f}",
        ])
    return table


HEADER = ["net", "weights", "images/s", "ms/step binwrn", "ms/step plain", "binwrn / plain",
          "model TFLOP/s", "of peak", "peak memory (MB)"]


def markdown(results: list[Result], env: dict, command: str, peak: float | None,
             first_step_s: float | None) -> str:
    lines = [f"## {env['device']}, {env['date']}", "",
             f"Command: `{command}`", "",
             f"torch {env['torch']}, lightning {env['lightning']}, binwrn {env['binwrn']}, "
             f"Python {env['python']}, {env['threads']} torch threads; batch "
             f"{results[0].case.batch_size}, {results[0].case.steps} timed steps after "
             f"{results[0].case.warmup} warm-up steps; measured peak "
             f"{f'{peak:.0f} TFLOP/s (bf16 matmul)' if peak else '-: a CPU'}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results, peak)]
    lines += ["", "| net | 1-bit / fp32 step time (binwrn path) |", "|---|---|"]
    lines += [f"| {d}-{w} | {ratio:.3f} |" for (d, w), ratio in one_bit_over_fp32(results).items()]
    lines += ["", startup_line(first_step_s), ""]
    return "\n".join(lines)


def startup_line(first_step_s: float | None) -> str:
    startup = f"{first_step_s:.1f} s" if first_step_s is not None else "not measured"
    return (f"Command to first training step (`binwrn-run experiment=smoke dataset=digits`, "
            f"data cache warm): {startup}.")
