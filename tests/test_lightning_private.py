"""The private Lightning names binwrn builds on stay where binwrn/train/lightning_private.py
imports them, shaped as train/cluster.py uses them; no other module imports one. A Lightning
upgrade that moves, renames or reshapes one fails here, by name."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import lightning
import pytest
import torch
from packaging.specifiers import SpecifierSet

from binwrn.errors import BinwrnError
from binwrn.train import lightning_private
from binwrn.train.lightning_private import (
    TESTED,
    _get_default_process_group_backend_for_device,
    _init_dist_connection,
    _set_num_threads_if_needed,
)

ROOT = Path(__file__).resolve().parents[1]


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_tested_range_is_pyprojects_pin_and_holds_the_installed_lightning():
    pin = re.search(r'"lightning([^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pin and pin[1] == TESTED
    assert lightning.__version__ in SpecifierSet(TESTED)


def test_the_process_group_helpers_take_what_cluster_passes():
    assert _get_default_process_group_backend_for_device(torch.device("cpu")) == "gloo"
    assert _parameters(_init_dist_connection)[:4] == [
        "cluster_environment", "torch_distributed_backend", "global_rank", "world_size"]
    assert _parameters(_set_num_threads_if_needed) == ["num_processes"]


@pytest.mark.parametrize(("module", "name", "problem"), [
    ("lightning.fabric.utilities.distributed", "_init_dist_connection",
     "has moved or renamed a private name"),
    ("lightning.fabric.utilities.distributed", "_set_num_threads_if_needed",
     "has moved or renamed a private name"),
])
def test_a_lightning_without_a_name_fails_at_import_with_one_sentence(monkeypatch, module, name,
                                                                       problem):
    monkeypatch.delattr(f"{module}.{name}")
    with pytest.raises(BinwrnError) as caught:
        importlib.reload(lightning_private)
    message = str(caught.value)
    assert problem in message and f"install lightning{TESTED}" in message
    assert lightning.__version__ in message
    monkeypatch.undo()
    importlib.reload(lightning_private)  # as it was, for the tests after this one


def _private_lightning_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lightning":
            parts = [*node.module.split("."), *(alias.name for alias in node.names)]
            found += [f"{node.module}: {alias.name}" for alias in node.names
                      if any(part.startswith("_") for part in parts)]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names
                      if alias.name.split(".")[0] == "lightning"
                      and any(part.startswith("_") for part in alias.name.split("."))]
    return found


def test_no_other_module_imports_a_private_lightning_name():
    guarded = ROOT / "binwrn" / "train" / "lightning_private.py"
    assert _private_lightning_imports(guarded)  # the scan finds what it looks for
    elsewhere = {str(path.relative_to(ROOT)): names
                 for path in sorted((ROOT / "binwrn").rglob("*.py")) if path != guarded
                 for names in [_private_lightning_imports(path)] if names}
    assert elsewhere == {}, "import these through binwrn/train/lightning_private.py"
