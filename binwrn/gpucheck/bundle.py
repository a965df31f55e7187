"""`make gpu-bundle` (`python -m binwrn.gpucheck.bundle`): what a lent GPU machine needs for
`binwrn-gpucheck` and cannot fetch (it reaches no registry), staged in calls of at most
64 MiB each (the device tool's limit, working tree included), under the ignored .gpudata/:

- wheels for the device's Python (3.12, manylinux x86-64) of Hydra, OmegaConf, MLflow and
  every package they need that the device image lacks (device_packages.txt), at the
  versions uv.lock pins; a package published only as source is built into a wheel here;
- the real CIFAR-10 PNG tar, gzipped (the tar's 60,000 512-byte headers and paddings
  compress away) and split into parts of at most 60 MiB (`split -b 60M`);
- .gpudata/callN/ folders, each under the call limit with the working tree, a sha256
  MANIFEST per folder, and .gpudata/PLAN.md with each call's carried path and size.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

DEVICE_PYTHON = "3.12"  # KINDS.md: python3 on the GPU machines is 3.12.3
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64")
ROOTS = ("hydra-core", "omegaconf", "mlflow")
MIB = 2**20
CALL_LIMIT = 64 * MIB
MARGIN = 1 * MIB          # the MANIFEST files, and the tree growing by a commit or two
PART = 60 * MIB
OTHER_PLATFORMS = ("win32", "darwin", "Windows", "Darwin", "cygwin")
DATA_NAME = "cifar10-png.tar.gz"


def device_packages() -> set[str]:
    listed = (Path(__file__).with_name("device_packages.txt")).read_text().splitlines()
    return {line.strip().lower() for line in listed if line.strip() and line[0] != "#"}


def missing_packages(lock_file: Path) -> list[tuple[str, str, bool]]:
    """(name, version, has wheels) of ROOTS and their needs on Linux, less the image's."""
    packages = {p["name"]: p for p in tomllib.loads(lock_file.read_text())["package"]}
    present, found, todo = device_packages(), {}, list(ROOTS)
    while todo:
        name = todo.pop()
        if name in found or name in present:
            continue
        package = packages[name]
        found[name] = (name, package["version"], bool(package.get("wheels")))
        for dep in package.get("dependencies", []):
            if not any(word in dep.get("marker", "") for word in OTHER_PLATFORMS):
                todo.append(dep["name"])
    return sorted(found.values())


def pip(*args: str) -> None:
    """pip of this Python (`make gpu-bundle` adds it: uv's environments have none)."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch_wheels(lock_file: Path, wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    missing = missing_packages(lock_file)
    binary = [f"{n}=={v}" for n, v, has_wheels in missing if has_wheels]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
        DEVICE_PYTHON, "--implementation", "cp", *platforms, "-d", str(wheels), *binary)
    source_only = [f"{n}=={v}" for n, v, has_wheels in missing if not has_wheels]
    if source_only:  # e.g. antlr4-python3-runtime 4.9.3 (pure Python, sdist only)
        pip("wheel", "--quiet", "--no-deps", "-w", str(wheels), *source_only)


def pack_data(tar: Path, folder: Path) -> list[Path]:
    """gzip the tar and split it into PART-sized pieces named as `split` names them."""
    packed = folder / DATA_NAME
    if not packed.is_file():
        with tar.open("rb") as src, gzip.open(packed.with_suffix(".partial"), "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 16 * MIB)
        packed.with_suffix(".partial").rename(packed)
    parts, data = [], packed.read_bytes()
    for index, start in enumerate(range(0, len(data), PART)):
        part = folder / f"{DATA_NAME}.part-a{chr(ord('a') + index)}"
        part.write_bytes(data[start:start + PART])
        parts.append(part)
    (folder / f"{DATA_NAME}.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  {DATA_NAME}\n")
    return parts


def tree_bytes(repo: Path) -> int:
    """What every call sends besides its carried folder: tracked and untracked files git does
    not ignore."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / name.decode()).stat().st_size for name in listed
               if name and (repo / name.decode()).is_file())


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
        else path.stat().st_size


def plan_calls(items: list[Path], capacity: int) -> list[list[Path]]:
    """First fit, largest first: each call's items together stay within `capacity`."""
    calls: list[list[Path]] = []
    for item in sorted(items, key=size, reverse=True):
        if size(item) > capacity:
            raise SystemExit(f"{item} ({size(item) / MIB:.1f} MiB) cannot travel in one call "
                             f"({capacity / MIB:.1f} MiB left beside the working tree).")
        fitting = next((c for c in calls if sum(map(size, c)) + size(item) <= capacity), None)
        if fitting is None:
            calls.append(fitting := [])
        fitting.append(item)
    return calls


def stage_folders(bundle: Path, calls: list[list[Path]]) -> list[Path]:
    folders = []
    for number, items in enumerate(calls, start=1):
        folder = bundle / f"call{number}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        sums = []
        for item in items:
            moved = Path(shutil.move(str(item), folder / item.name))
            files = sorted(moved.rglob("*")) if moved.is_dir() else [moved]
            sums += [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(folder)}"
                     for f in files if f.is_file()]
        (folder / f"MANIFEST-call{number}.sha256").write_text("\n".join(sums) + "\n")
        folders.append(folder)
    return folders


def plan_text(folders: list[Path], tree: int) -> str:
    lines = ["# GPU staging plan (written by make gpu-bundle)", "",
             f"Working tree sent with every call: {tree / MIB:.1f} MiB; limit per call "
             f"{CALL_LIMIT / MIB:.0f} MiB.", "", "| call | carry | MiB carried | MiB with tree |",
             "|---|---|---|---|"]
    for number, folder in enumerate(folders, start=1):
        carried = size(folder)
        lines.append(f"| {number} | `.gpudata/{folder.name}` | {carried / MIB:.1f} | "
                     f"{(carried + tree) / MIB:.1f} |")
    lines += ["", "Calls 1..N-1 run `sh binwrn/gpucheck/stage.sh .gpudata/callK`; the last "
              "runs `sh binwrn/gpucheck/stage.sh .gpudata/callN --finish` and then the check "
              "(README, \"Checking on a GPU\")."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="gpu-bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tar", type=Path,
                        default=Path("../shared/datasets/cifar10-png.tar"),
                        help="the real CIFAR-10 PNG tar (default ../shared/datasets/...)")
    parser.add_argument("--repo", type=Path, default=Path("."))
    args = parser.parse_args()
    if not args.tar.is_file():
        raise SystemExit(f"gpu-bundle: {args.tar} is not there: pass TAR=path/to/"
                         "cifar10-png.tar.")
    bundle = args.repo / ".gpudata"
    shutil.rmtree(bundle / "staging", ignore_errors=True)
    for old in bundle.glob("call*"):
        shutil.rmtree(old)
    staging = bundle / "staging"
    staging.mkdir(parents=True)
    fetch_wheels(args.repo / "uv.lock", staging / "wheels")
    cache = bundle / "cache"
    cache.mkdir(exist_ok=True)
    parts = pack_data(args.tar, cache)
    for part in [*parts, cache / f"{DATA_NAME}.sha256"]:
        shutil.copy(part, staging / part.name)
        if part in parts:
            part.unlink()
    tree = tree_bytes(args.repo)
    items = sorted(staging.iterdir())
    folders = stage_folders(bundle, plan_calls(items, CALL_LIMIT - tree - MARGIN))
    staging.rmdir()
    plan = plan_text(folders, tree)
    (bundle / "PLAN.md").write_text(plan)
    print(plan, end="")


if __name__ == "__main__":
    main()
