"""The verdict table: rows from every section, printed with rich and recorded in Markdown.

A row's verdict is pass or fail where the issue sets a threshold, `info` for a measurement
with none, and on the CPU (`--cpu`) `cpu-shrunk` for every step that ran: a shrunk step's
numbers prove the code path, not the GPU claim. `error` and `timeout` stay what they are on
both, and make the command exit non-zero.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

SECTIONS = ("environment", "gpu_tests", "speed", "accuracy")
FAILED = ("fail", "error", "timeout")


@dataclass
class Row:
    section: str
    check: str
    value: str
    reference: str = ""
    verdict: str = "info"

    def shrunk(self) -> Row:
        """The same row from a CPU run: its verdict becomes cpu-shrunk unless it broke."""
        if self.verdict in ("error", "timeout"):
            return self
        return Row(self.section, self.check, self.value, self.reference, "cpu-shrunk")


def append_row(path: Path, row: Row) -> None:
    """One JSON line per row, written as each is known: a section killed at its time limit
    keeps the rows it finished."""
    with path.open("a") as f:
        f.write(json.dumps(asdict(row)) + "\n")


def read_rows(path: Path) -> list[Row]:
    if not path.is_file():
        return []
    return [Row(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def passed(rows: list[Row]) -> bool:
    return bool(rows) and not any(r.verdict in FAILED for r in rows)


HEADER = ["section", "check", "value", "reference", "verdict"]


def rich_table(rows: list[Row], title: str):
    from rich.table import Table

    table = Table(title=title)
    for column in HEADER:
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "error": "red", "timeout": "red",
               "cpu-shrunk": "yellow"}
    for r in rows:
        colour = colours.get(r.verdict)
        verdict = f"[{colour}]{r.verdict}[/{colour}]" if colour else r.verdict
        table.add_row(r.section, r.check, r.value, r.reference, verdict)
    return table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], heading: str, preamble: list[str]) -> str:
    lines = [f"## {heading}", "", *preamble, "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cell(getattr(r, c)) for c in HEADER) + " |" for r in rows]
    return "\n".join(lines) + "\n"


DOC_HEADER = """# GPU check

Written by `make gpu-check` (`binwrn-gpucheck`); newest first. Each section names the GPU,
library versions, date and the exact command. `make gpu-check CPU=1` runs the same steps
shrunk on a CPU; its rows say `cpu-shrunk`: they prove the code path, not the GPU claim.
docs/gpu.md says how to run it on any CUDA machine, and how to stage it
on a GPU node that has no package index.

"""


def record(doc: Path, section: str) -> None:
    """Put `section` at the top of `doc`, under its header."""
    old = doc.read_text().removeprefix(DOC_HEADER) if doc.is_file() else ""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(DOC_HEADER + section + "\n" + old)
