"""`make test-compat [PY=3.12|3.13]` (`python -m binwrn.gpucheck.compat`): the suite and the
GPU check's CPU rehearsal in a second environment, built with uv beside the locked .venv.

- the image's Python (3.12 for image_packages.txt): the oldest supported set, every version
  the image pins (torch, torchvision, Lightning, NumPy, ONNX, ONNX Runtime) and the floors
  of pyproject.toml for what the image lacks (Hydra, OmegaConf, MLflow);
- any other Python (3.13): the newest versions pyproject.toml allows.

Then the non-slow suite (`pytest -m "not slow"`) and `binwrn-gpucheck --cpu`, both from that
environment. The interpreter is looked for on this machine only (PATH, then pyenv's
versions, then uv's own); none found is one sentence and exit 2. Runs on the stdlib alone
(the system python3), so it needs neither .venv nor the environment it builds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE = Path(__file__).with_name("image_packages.txt")
# What the image lacks, installed at pyproject.toml's floor in the oldest set.
FLOORED = ("hydra-core", "omegaconf", "mlflow")
MARKERS = "not slow and not server"


class Refusal(Exception):
    """One sentence for the user; main() prints it and exits 2."""


def image_pins(image: Path) -> dict[str, str]:
    """name -> version of the image's `name==version` lines ('python' included)."""
    pins = {}
    for line in image.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            pins[name.lower()] = version
    return pins


def floors(pyproject: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The `>=` floor pyproject.toml gives each of names."""
    found = {}
    for spec in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([^,;\s]+)", spec)
        if match and match.group(1).lower() in names:
            found[match.group(1).lower()] = match.group(3)
    missing = set(names) - set(found)
    if missing:
        raise Refusal(f"pyproject.toml gives no >= floor for {', '.join(sorted(missing))}.")
    return found


def dev_requirements(pyproject: Path) -> list[str]:
    return tomllib.loads(pyproject.read_text())["dependency-groups"]["dev"]


def supported(minor: str, pyproject: Path) -> bool:
    """Whether pyproject.toml's requires-python (`>=3.A,<3.B`) admits Python `minor`."""
    wanted = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    version = tuple(map(int, minor.split(".")))
    for clause in wanted.split(","):
        match = re.fullmatch(r"\s*(>=|<)\s*(\d+)\.(\d+)\s*", clause)
        if match:
            bound = (int(match.group(2)), int(match.group(3)))
            if (match.group(1) == ">=" and version < bound) or \
                    (match.group(1) == "<" and version >= bound):
                return False
    return True


def find_python(minor: str) -> str:
    """A working python{minor} on this machine: PATH (a pyenv shim of a version that is not
    selected fails, so each candidate is run), pyenv's versions, then uv's own."""
    candidates = [found for found in [shutil.which(f"python{minor}")] if found]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted((str(p) for p in pyenv.glob(f"{minor}.*/bin/python{minor}")),
                         reverse=True)
    for candidate in candidates:
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == str(tuple(map(int, minor.split(".")))):
            return candidate
    uv = subprocess.run([uv_command()[0], *uv_command()[1:], "python", "find",
                         "--no-python-downloads", minor], capture_output=True, text=True)
    if uv.returncode == 0 and uv.stdout.strip():
        return uv.stdout.strip()
    raise Refusal(f"No Python {minor} on this machine (not on PATH, in pyenv's versions or "
                  f"uv's): install it, or pass another PY.")


def uv_command() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    return found.split() if " " in found else [found]


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    done = subprocess.run(command, **kwargs)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def constraints(minor: str, image: Path) -> list[str]:
    """The oldest set for the image's Python; none (the newest) for any other."""
    pins = image_pins(image)
    if ".".join(pins.get("python", "").split(".")[:2]) != minor:
        return []
    pins.pop("python", None)
    pins.update({name: version for name, version in
                 floors(REPO / "pyproject.toml", FLOORED).items() if name not in pins})
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def main() -> None:
    parser = argparse.ArgumentParser(prog="test-compat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="3.12", help="3.12 (the image's: oldest set) or "
                        "3.13 (newest versions)")
    parser.add_argument("--image", type=Path, default=IMAGE,
                        help="the image's package list (default binwrn/gpucheck/"
                        "image_packages.txt)")
    parser.add_argument("--env", type=Path, help="default .venv-compat-PY")
    args = parser.parse_args()
    try:
        if not re.fullmatch(r"3\.\d+", args.python):
            raise Refusal(f"PY={args.python} is not a Python version such as 3.12.")
        if not supported(args.python, REPO / "pyproject.toml"):
            raise Refusal(f"Python {args.python} is outside the supported range (pyproject.toml"
                          "'s requires-python): use 3.12 or 3.13.")
        if not args.image.is_file():
            raise Refusal(f"{args.image} is not there: pass IMAGE=path/to/image-packages.txt.")
        python = find_python(args.python)
        pinned = constraints(args.python, args.image)
    except Refusal as refusal:
        print(f"test-compat: {refusal}", file=sys.stderr)
        sys.exit(2)
    env = (args.env or REPO / f".venv-compat-{args.python}").resolve()
    started = time.perf_counter()
    uv = uv_command()
    run([*uv, "venv", "--quiet", "--clear", "--python", python, str(env)])
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(pinned) + "\n")
    try:
        run([*uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python"),
             "--compile-bytecode", *(["-c", handle.name] if pinned else []),
             "-e", str(REPO), *dev_requirements(REPO / "pyproject.toml")])
    finally:
        os.unlink(handle.name)
    built = time.perf_counter() - started
    which = "oldest set (" + ", ".join(pinned) + ")" if pinned else "newest versions"
    print(f"test-compat: Python {args.python}, {which}; environment built in {built:.0f} s",
          flush=True)
    py = str(env / "bin" / "python")
    subprocess.run([py, "-c", "import torch, torchvision, lightning, numpy, mlflow, hydra, "
                    "onnx, onnxruntime, sys; print('versions: Python', sys.version.split()[0], "
                    "*(f'{m.__name__} {m.__version__}' for m in (torch, torchvision, "
                    "lightning, numpy, mlflow, hydra, onnx, onnxruntime)))"], check=True)
    run([py, "-m", "pytest", "-q", "-n", "2", "-m", MARKERS, "-p", "no:cacheprovider"],
        cwd=REPO)
    tested = time.perf_counter() - started
    out = Path(tempfile.mkdtemp(prefix=f"binwrn-compat-{args.python}-"))
    run([str(env / "bin" / "binwrn-gpucheck"), "--cpu", "--out", str(out)], cwd=REPO)
    checked = time.perf_counter() - started
    print(f"test-compat: Python {args.python} passed: environment {built:.0f} s, suite "
          f"{tested - built:.0f} s, binwrn-gpucheck --cpu {checked - tested:.0f} s, "
          f"{checked:.0f} s in all (its table: {out / 'gpu-check.md'})")


if __name__ == "__main__":
    main()
