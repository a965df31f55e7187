"""What `make ui` prints before it starts the server: the links to open.

    python -m binwrn.tracking.ui_link STORE PORT [EXPERIMENT]

The experiment's id is read from the SQLite store itself (it is not always 1: a store that
held other experiments first numbers binwrn's differently), with the standard library only,
so the line appears at once, before MLflow's slow start.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from binwrn.tracking.store import ui_link


def _query(store: Path, sql: str, *args: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.Error:  # no such file or table: a store no run has written to yet
        return []


def links(store: Path, port: int, experiment: str = "binwrn") -> list[str]:
    """'Open ...' lines: the experiment's Model training view, and the registered models."""
    found = _query(store, "SELECT experiment_id FROM experiments WHERE name = ? "
                          "AND lifecycle_stage = 'active'", experiment)
    if not found:
        return [f"No experiment {experiment} in {store} yet: after binwrn-run, open "
                f"{ui_link(port)} and pick it (Model training view)."]
    lines = [f"Open {ui_link(port, str(found[0][0]))}"]
    if _query(store, "SELECT name FROM registered_models LIMIT 1"):
        lines.append(f"Registered models: {ui_link(port)}#/models")
    return lines


def main() -> None:
    store, port, *experiment = sys.argv[1:]
    print("\n".join(links(Path(store), int(port), *experiment)))


if __name__ == "__main__":
    main()
