"""Config flows one way (issue 20): the configuration package reads DictConfigs and builds the
RunSpec; nothing under binwrn/train imports it (or omegaconf), and no module of train, export,
models or data takes a DictConfig."""

from __future__ import annotations

import ast
from pathlib import Path

import binwrn

PACKAGE = Path(binwrn.__file__).parent
BELOW_CONFIGURATION = ("train", "export", "models", "data")
FORBIDDEN = ("binwrn.configuration", "binwrn.config", "omegaconf", "hydra")


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
