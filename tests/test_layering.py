"""Config flows one way (issue 20): the configuration package reads DictConfigs and builds the
RunSpec; nothing under binwrn/train imports it (or omegaconf), and no module of train, export,
models or data takes a DictConfig."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import binwrn

PACKAGE = Path(binwrn.__file__).parent
BELOW_CONFIGURATION = ("train", "export", "models", "data")
FORBIDDEN = ("binwrn.configuration", "omegaconf", "hydra")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in `path`, at any depth (function-level ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, node.module)]
            # `from binwrn import configuration` names it as an imported name
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _offending(folder: str) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            for path in sorted((PACKAGE / folder).rglob("*.py"))
            for line, module in _imports(path)
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN)]


def test_nothing_under_train_export_models_data_imports_the_configuration() -> None:
    offending = [o for folder in BELOW_CONFIGURATION for o in _offending(folder)]
    assert not offending, "imports that run back up: " + "; ".join(offending)


def test_no_module_below_the_entry_points_names_dictconfig() -> None:
    named = [f"{path.relative_to(PACKAGE.parent)}:{number}"
             for folder in BELOW_CONFIGURATION
             for path in sorted((PACKAGE / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if "DictConfig" in line]
    assert not named, "DictConfig below the entry points: " + "; ".join(named)


def test_the_walk_finds_an_offending_import(tmp_path: Path) -> None:
    planted = tmp_path / "m.py"
    planted.write_text("def f():\n    from binwrn.configuration.prepare import prepare\n")
    assert (2, "binwrn.configuration.prepare") in _imports(planted)


def _client_constructions(path: Path) -> list[int]:
    """Lines of `MlflowClient(...)` and `mlflow.MlflowClient(...)` calls in `path`."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Call) and getattr(node.func, "id",
                                                      getattr(node.func, "attr", None))
            == "MlflowClient"]


def test_every_mlflow_client_is_opened_by_the_store() -> None:
    """One rule for the store (issue 20 item 2): clients come from tracking.store.open_client,
    which serialises a new SQLite store's creation and never uses MLflow's global default."""
    store = PACKAGE / "tracking" / "store.py"
    direct = [f"{path.relative_to(PACKAGE.parent)}:{line}"
              for path in sorted(PACKAGE.rglob("*.py")) if path != store
              for line in _client_constructions(path)]
    assert not direct, "MlflowClient built outside open_client: " + "; ".join(direct)
    assert _client_constructions(store)  # the walk does find them where they are


# Rooms and the rooms they must not import (issue 28 item 3): train hands the entry point an
# end-of-run hook instead of importing report; export reads layer order from models, not
# train; a model knows nothing of training, tracking or data.
KEPT_APART = {
    "train": ("binwrn.report", "binwrn.export", "binwrn.sweeps", "binwrn.cli"),
    "export": ("binwrn.train", "binwrn.report"),
    "models": ("binwrn.train", "binwrn.tracking", "binwrn.data", "binwrn.export"),
}


@pytest.mark.parametrize("room", list(KEPT_APART))
def test_a_room_imports_no_room_above_it(room: str) -> None:
    offending = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
                 for path in sorted((PACKAGE / room).rglob("*.py"))
                 for line, module in _imports(path)
                 if any(module == f or module.startswith(f + ".") for f in KEPT_APART[room])]
    assert not offending, "; ".join(offending)
