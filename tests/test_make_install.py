"""`make install` with .venv activated (its python3 has neither pip nor uv) and with uv only
where `pip install --user uv` puts it: ~/.local/bin, or a module of a python3 on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
SYSTEM_PATH = "/usr/bin:/bin"  # no uv here: the Makefile must find it elsewhere

pytestmark = pytest.mark.skipif(not (VENV_BIN / "python").exists() or not shutil.which("make"),
                                reason="needs make and the installed .venv")


def _make(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _variables(env: dict) -> dict[str, str]:
    """UV and PYTHON3 as the Makefile resolves them in `env`."""
    database = _make("-pn", "install", env=env).stdout
    pairs = (line.split(" := ", 1) for line in database.splitlines() if " := " in line)
    return {k: v for k, v in pairs if k in ("UV", "PYTHON3")}


def _uv_binary() -> Path:
    """The uv this machine's make uses, as an executable file."""
    uv = _variables(dict(os.environ))["UV"]
    if uv.endswith(" -m uv"):
        found = subprocess.run([uv.removesuffix(" -m uv"), "-c",
                                "import uv; print(uv.find_uv_bin())"],
                               capture_output=True, text=True, check=True)
        return Path(found.stdout.strip())
    return Path(uv)


def _env(home: Path, path: str) -> dict:
    cache = subprocess.run([str(_uv_binary()), "cache", "dir"], capture_output=True,
                           text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("UV", "PYTHON3", "PY", "MAKEFLAGS")}
    # As `source .venv/bin/activate` leaves it; the real uv cache, so nothing is downloaded.
    env.update(HOME=str(home), PATH=path, VIRTUAL_ENV=str(ROOT / ".venv"),
               UV_CACHE_DIR=cache)
    return env


def test_install_with_venv_active_and_uv_in_home_local_bin(tmp_path: Path) -> None:
    local_bin = tmp_path / ".local" / "bin"
    local_bin.mkdir(parents=True)
    (local_bin / "uv").symlink_to(_uv_binary())
    env = _env(tmp_path, f"{VENV_BIN}:{SYSTEM_PATH}")
    assert _variables(env)["UV"] == str(local_bin / "uv")
    done = _make("install", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No module named pip" not in done.stderr


def test_install_with_venv_active_and_uv_a_module_of_python3(tmp_path: Path) -> None:
    """No uv binary on PATH or in ~/.local/bin: `python3 -m uv` of the first python3 on PATH
    outside .venv (whose own python3 is first on PATH and has no uv)."""
    candidates = [shutil.which("python3", path=os.environ["PATH"].replace(f"{VENV_BIN}:", "")),
                  "/usr/bin/python3"]
    user_base = subprocess.run(["python3", "-m", "site", "--user-base"], capture_output=True,
                               text=True, env={**os.environ, "PATH": SYSTEM_PATH}).stdout.strip()
    python = next((c for c in candidates if c and subprocess.run(
        [c, "-m", "uv", "--version"], capture_output=True,
        env={**os.environ, "PYTHONUSERBASE": user_base}).returncode == 0), None)
    if python is None:
        pytest.skip("no python3 here has uv as a module")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    home = tmp_path / "home"
    home.mkdir()
    env = {**_env(home, f"{VENV_BIN}:{bin_dir}:{SYSTEM_PATH}"), "PYTHONUSERBASE": user_base}
    variables = _variables(env)
    assert variables["PYTHON3"] == str(bin_dir / "python3")
    assert variables["UV"] == f"{bin_dir / 'python3'} -m uv"
    done = _make("install", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


# Counts the modules loaded from site-packages that have no cached bytecode next to them.
_UNCOMPILED = """
import importlib.util, os, sys
import torch._dynamo, lightning, mlflow
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
sources = [f for f in files if f.endswith(".py") and "/site-packages/" in f]
print(sum(not os.path.exists(importlib.util.cache_from_source(f)) for f in sources))
"""


def test_install_leaves_compiled_bytecode_for_what_every_start_imports() -> None:
    """With PYTHONDONTWRITEBYTECODE set (these machines set it), Python compiles any module
    without a .pyc from source at every start and keeps nothing: 11.7 s of a 23 s smoke run.
    `make install` (which `make test` runs first) compiles the environment once."""
    done = subprocess.run([str(VENV_BIN / "python"), "-c", _UNCOMPILED], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == 0, f"{done.stdout.strip()} modules have no .pyc: make install"
