"""One section of the check in its own process, so the parent can hold it to its time limit:
`python -m binwrn.gpucheck.section NAME PROFILE OUT WORK [DATA_ROOT]`. Rows are appended to
OUT/rows.jsonl as they are known."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from binwrn.gpucheck import profile as profiles
from binwrn.gpucheck.rows import Row, append_row


def run_section(name: str, profile: profiles.Profile, out: Path, work: Path,
                data_root: str | None) -> None:
    rows_file = out / "rows.jsonl"

    def emit(row: Row) -> None:
        append_row(rows_file, row)

    try:
        if name == "environment":
            from binwrn.gpucheck import environment

            environment.rows(profile, emit)
        elif name == "speed":
            from binwrn.gpucheck import speed

            speed.rows(profile, emit)
        elif name == "accuracy":
            from binwrn.gpucheck import accuracy

            accuracy.rows(profile, emit, out, work, data_root, profile.limits_s[name])
        else:
            raise ValueError(f"unknown section {name}")
    except Exception as err:  # the table names what broke; the traceback goes to the log
        traceback.print_exc()
        emit(Row(name, "section", f"{type(err).__name__}: {err}"[:400], verdict="error"))
        sys.exit(1)


def main() -> None:
    name, profile_name, out, work = sys.argv[1:5]
    data_root = sys.argv[5] if len(sys.argv) > 5 else None
    profile = profiles.CPU if profile_name == "cpu" else profiles.GPU
    run_section(name, profile, Path(out), Path(work), data_root)


if __name__ == "__main__":
    main()
