"""`binwrn-run --help` is binwrn's own: what it does, README examples, conf/'s groups and
options, the sibling commands; Hydra's help is still at --hydra-help."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from binwrn.configuration.compose import conf_dir
from binwrn.configuration.run_help import EXAMPLES, SIBLINGS

ROOT = Path(__file__).resolve().parents[1]
BINWRN_RUN = Path(sys.executable).with_name("binwrn-run")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINWRN_RUN), *args], capture_output=True, text=True, timeout=120)


def test_help_is_ours() -> None:
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage: binwrn-run [-m] [group=option ...] [key=value ...]")
    assert "1-bit" in text and "MLflow" in text
    for command, _ in EXAMPLES:
        assert f"  {command}\n" in text
    for group in ("dataset", "model", "bn", "schedule", "optim", "trainer", "experiment"):
        options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        line = next(line for line in text.splitlines() if line.startswith(f"  {group} "))
        assert options[0] in line.replace("*", "")
        assert all(o in text for o in options)
    assert "cifar10*" in text and "wrn*" in text  # the defaults are marked
    for name, _ in SIBLINGS:
        assert f"  {name} " in text
    assert "--hydra-help" in text
    assert "Powered by Hydra" not in text and "== Config ==" not in text


def test_examples_are_the_readmes_and_siblings_the_packages_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(EXAMPLES) == 10
    for command, _ in EXAMPLES:
        assert command in readme, command
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    expected = {s for s in scripts if s not in ("binwrn-run", "binwrn-bench-loader")}
    assert {name for name, _ in SIBLINGS} == expected


def test_hydra_help_stays_reachable() -> None:
    out = _run("--hydra-help")
    assert out.returncode == 0 and "Hydra" in out.stdout and "--multirun" in out.stdout
