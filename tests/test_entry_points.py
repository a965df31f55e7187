"""Every console script of pyproject.toml starts where binwrn/cli.py's docstring says."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import binwrn.cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
DOC = " ".join(binwrn.cli.__doc__.split())


@pytest.mark.parametrize(("script", "target"), SCRIPTS.items())
def test_each_console_script_starts_where_the_cli_docstring_says(script, target):
    module, function = target.split(":")
    assert callable(getattr(importlib.import_module(module), function)), target
    if module == "binwrn.cli":
        assert script in DOC.split(".")[0], f"{script}: not among the scripts cli.py starts"
    else:
        where = module.removeprefix("binwrn.").replace(".", "/") + ".py"
        assert f"{script} in {where}" in DOC, f"{script}: cli.py's docstring does not say {where}"


def test_the_docstring_names_no_script_pyproject_lacks():
    named = {word.strip(",.()") for word in DOC.split() if word.startswith("binwrn-")}
    assert named == set(SCRIPTS)
