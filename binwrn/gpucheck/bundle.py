"""`make gpu-bundle` (`python -m binwrn.gpucheck.bundle`): what a GPU machine without a package
index needs for `binwrn-gpucheck` beyond what its image already holds, staged in folders of at
most --part-mib each (a transfer's size limit), under the ignored .gpudata/:

- the image's packages are a file (image_packages.txt, or --image: `pip list
  --format=freeze` run on the image, with a `python==X.Y.Z` line): binwrn's needs are
  resolved for that Python against the image's pinned versions (`uv pip compile`), and only
  the packages the image does not list travel, as wheels for manylinux x86-64, with
  wheels/requirements.txt naming them; a package published only as source is built into a
  wheel here;
- the real CIFAR-10 PNG tar, gzipped (the tar's 60,000 512-byte headers and paddings
  compress away) and split into pieces that fit a folder;
- .gpudata/partN/ folders, each within --part-mib with --beside-mib left over for what
  travels beside it (the repository's files, by default, for a transfer that sends the
  checkout with every folder), a sha256 MANIFEST per folder, and .gpudata/PLAN.md.

On the GPU machine, stage.sh copies each folder to a stage outside the checkout; with
--finish it checks every sum, unpacks CIFAR-10 and installs the wheels the way a machine
without an index can: `pip install --no-index --find-links wheels --target site -r
wheels/requirements.txt`. `--rehearse` does all of that here: a Python of the image's version
with only the image's share of binwrn's needs, the folders staged with stage.sh, then
`binwrn-gpucheck --cpu` from the installed wheels.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from binwrn.gpucheck.compat import Refusal, find_python, image_pins, uv_command

IMAGE = Path(__file__).with_name("image_packages.txt")
PLATFORM = "x86_64-manylinux_2_28"  # uv's name for the image's platform
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64")
# The check runs tests/test_gpu_path.py with pytest on the GPU machine.
CHECK_NEEDS = ("pytest", "hypothesis")
MIB = 2**20
MARGIN = 1 * MIB          # the MANIFEST files, and the tree growing by a commit or two
DATA_NAME = "cifar10-png.tar.gz"


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_names(image: Path) -> set[str]:
    """Every package the image holds, pinned or not ('python' left out)."""
    names = set()
    for line in image.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normal(re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0]))
    return names - {"python"}


def resolve(repo: Path, image: Path, python: str) -> list[tuple[str, str]]:
    """(name, version) of everything binwrn and the check need on the image's Python and
    platform, with the image's pinned versions as constraints."""
    pins = {name: version for name, version in image_pins(image).items() if name != "python"}
    with tempfile.TemporaryDirectory() as tmp:
        constraints, needs = Path(tmp) / "image.txt", Path(tmp) / "needs.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        needs.write_text("".join(f"{n}\n" for n in CHECK_NEEDS))
        done = subprocess.run(
            [*uv_command(), "pip", "compile", "--quiet", "--no-header", "--no-annotate",
             "--python-version", python, "--python-platform", PLATFORM, "-c", str(constraints),
             str(repo / "pyproject.toml"), str(needs)], capture_output=True, text=True)
    if done.returncode != 0:
        raise Refusal("binwrn's needs do not resolve against the image's versions: "
                      + (done.stderr.strip().splitlines() or ["(uv said nothing)"])[-1])
    found = []
    for line in done.stdout.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            found.append((normal(name), version))
    return found


def missing_packages(repo: Path, image: Path, python: str) -> list[tuple[str, str]]:
    """What the check needs that the image does not hold: what travels."""
    held = image_names(image)
    return [(name, version) for name, version in resolve(repo, image, python)
            if name not in held]


def source_only(lock_file: Path) -> set[str]:
    """Packages uv.lock knows only as source (sdist, no wheel), e.g. antlr4-python3-runtime."""
    return {normal(p["name"]) for p in tomllib.loads(lock_file.read_text())["package"]
            if "sdist" in p and not p.get("wheels")}


def pip(*args: str) -> None:
    """pip of this Python (`make gpu-bundle` adds it: uv's environments have none)."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch_wheels(missing: list[tuple[str, str]], python: str, sources: set[str],
                 wheels: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    binary = [f"{n}=={v}" for n, v in missing if n not in sources]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
        python, "--implementation", "cp", *platforms, "-d", str(wheels), *binary)
    built = [f"{n}=={v}" for n, v in missing if n in sources]
    if built:  # pure Python published as source only (antlr4-python3-runtime 4.9.3)
        pip("wheel", "--quiet", "--no-deps", "-w", str(wheels), *built)
    (wheels / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in missing))


def pack_data(tar: Path, folder: Path, piece: int) -> list[Path]:
    """gzip the tar and split it into pieces of `piece` bytes, named as `split` names them."""
    packed = folder / DATA_NAME
    if not packed.is_file():
        with tar.open("rb") as src, gzip.open(packed.with_suffix(".partial"), "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 16 * MIB)
        packed.with_suffix(".partial").rename(packed)
    parts, data = [], packed.read_bytes()
    for index, start in enumerate(range(0, len(data), piece)):
        part = folder / f"{DATA_NAME}.part-a{chr(ord('a') + index)}"
        part.write_bytes(data[start:start + piece])
        parts.append(part)
    (folder / f"{DATA_NAME}.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  {DATA_NAME}\n")
    return parts


def tree_bytes(repo: Path) -> int:
    """The repository's tracked and untracked-not-ignored files: what a transfer that sends
    the checkout with every folder carries besides it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / name.decode()).stat().st_size for name in listed
               if name and (repo / name.decode()).is_file())


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
        else path.stat().st_size


def plan_calls(items: list[Path], capacity: int) -> list[list[Path]]:
    """First fit, largest first: each folder's items together stay within `capacity`."""
    calls: list[list[Path]] = []
    for item in sorted(items, key=size, reverse=True):
        if size(item) > capacity:
            raise Refusal(f"{item.name} ({size(item) / MIB:.1f} MiB) does not fit one part "
                          f"({capacity / MIB:.1f} MiB): pass a larger PART_MIB.")
        fitting = next((c for c in calls if sum(map(size, c)) + size(item) <= capacity), None)
        if fitting is None:
            calls.append(fitting := [])
        fitting.append(item)
    return calls


def stage_folders(bundle: Path, calls: list[list[Path]]) -> list[Path]:
    folders = []
    for number, items in enumerate(calls, start=1):
        folder = bundle / f"part{number}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        sums = []
        for item in items:
            moved = Path(shutil.move(str(item), folder / item.name))
            files = sorted(moved.rglob("*")) if moved.is_dir() else [moved]
            sums += [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(folder)}"
                     for f in files if f.is_file()]
        (folder / f"MANIFEST-part{number}.sha256").write_text("\n".join(sums) + "\n")
        folders.append(folder)
    return folders


def plan_text(folders: list[Path], beside: int, part: int, missing) -> str:
    lines = ["# GPU staging plan (written by make gpu-bundle)", "",
             f"{len(missing)} packages the image lacks travel as wheels: "
             + ", ".join(f"{n} {v}" for n, v in missing) + ".", "",
             f"Each folder stays within {part / MIB:.0f} MiB with {beside / MIB:.1f} MiB "
             "beside it.", "", "| folder | MiB | MiB with what travels beside it |",
             "|---|---|---|"]
    for folder in folders:
        carried = size(folder)
        lines.append(f"| `.gpudata/{folder.name}` | {carried / MIB:.1f} | "
                     f"{(carried + beside) / MIB:.1f} |")
    last = folders[-1].name if folders else "partN"
    lines += ["", "Send each folder to the GPU machine and run `sh binwrn/gpucheck/stage.sh "
              f".gpudata/partK` there from the checkout; the last one, `.gpudata/{last}`, with "
              "`--finish`, then the check (docs/gpu.md)."]
    return "\n".join(lines) + "\n"


def rehearse(repo: Path, image: Path, python: str, resolved, folders: list[Path]) -> None:
    """The GPU machine's first run, on this CPU: a Python of the image's version holding only
    the image's share of binwrn's needs, every folder staged by stage.sh (its wheels installed
    with no index into a target folder), then `binwrn-gpucheck --cpu` from there."""
    started = time.perf_counter()
    env = repo / ".venv-image"
    held = image_names(image)
    uv = uv_command()
    subprocess.run([*uv, "venv", "--quiet", "--clear", "--seed", "--python",
                    find_python(python), str(env)], check=True)
    image_share = [f"{n}=={v}" for n, v in resolved if n in held]
    subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python"),
                    *image_share], check=True)
    bare = subprocess.run([str(env / "bin" / "python"), "-c", "import hydra"],
                          capture_output=True)
    if bare.returncode == 0:
        raise Refusal("the rehearsal's image environment already holds Hydra: it is not the "
                      "image's.")
    print(f"rehearsal: image environment {env.name} ({len(image_share)} of the image's "
          f"packages) in {time.perf_counter() - started:.0f} s; Hydra absent there", flush=True)
    stage = Path(tempfile.mkdtemp(prefix="binwrn-stage-"))
    path = f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}"
    shell = {**os.environ, "PATH": path, "BINWRN_STAGE": str(stage)}
    for index, folder in enumerate(folders):
        finish = ["--finish"] if index == len(folders) - 1 else []
        subprocess.run(["sh", "binwrn/gpucheck/stage.sh", str(folder.relative_to(repo)),
                        *finish], cwd=repo, env=shell, check=True)
    staged = time.perf_counter() - started
    out = stage / "check-out"
    check = {**shell, "PYTHONPATH": f"{stage / 'site'}{os.pathsep}{repo}"}
    done = subprocess.run([str(env / "bin" / "python"), "-m", "binwrn.gpucheck.cli", "--cpu",
                           "--out", str(out)], cwd=repo, env=check)
    print(f"rehearsal: staged in {staged:.0f} s, binwrn-gpucheck --cpu from the wheels in "
          f"{time.perf_counter() - started - staged:.0f} s (exit {done.returncode}); its table:"
          f" {out / 'gpu-check.md'}")
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(prog="gpu-bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=IMAGE,
                        help="the image's packages (default binwrn/gpucheck/image_packages.txt)")
    parser.add_argument("--tar", type=Path,
                        default=Path("../shared/datasets/cifar10-png.tar"),
                        help="the real CIFAR-10 PNG tar (default ../shared/datasets/...)")
    parser.add_argument("--part-mib", type=float, default=64,
                        help="the most one folder may hold, with what travels beside it")
    parser.add_argument("--beside-mib", type=float, help="what travels beside each folder "
                        "(default: this checkout's files, sent along with each)")
    parser.add_argument("--rehearse", action="store_true",
                        help="then stage it here as a GPU machine would and run the check "
                        "--cpu from the wheels")
    parser.add_argument("--repo", type=Path, default=Path("."))
    args = parser.parse_args()
    repo = args.repo.resolve()
    try:
        if not args.tar.is_file():
            raise Refusal(f"{args.tar} is not there: pass TAR=path/to/cifar10-png.tar.")
        if not args.image.is_file():
            raise Refusal(f"{args.image} is not there: pass IMAGE=path/to/image-packages.txt.")
        python = ".".join(image_pins(args.image).get("python", "").split(".")[:2])
        if not python:
            raise Refusal(f"{args.image} names no Python: add a line such as python==3.12.3.")
        beside = int(args.beside_mib * MIB) if args.beside_mib is not None \
            else tree_bytes(repo)
        capacity = int(args.part_mib * MIB) - beside - MARGIN
        if capacity < 4 * MIB:
            raise Refusal(f"PART_MIB={args.part_mib:g} leaves {capacity / MIB:.1f} MiB per "
                          "folder beside what travels with it: give at least "
                          f"{(beside + MARGIN) / MIB + 4:.0f}.")
        started = time.perf_counter()
        resolved = resolve(repo, args.image, python)
        held = image_names(args.image)
        missing = [(n, v) for n, v in resolved if n not in held]
        bundle = repo / ".gpudata"
        shutil.rmtree(bundle / "staging", ignore_errors=True)
        for old in [*bundle.glob("call*"), *bundle.glob("part[0-9]*")]:
            shutil.rmtree(old)
        staging = bundle / "staging"
        staging.mkdir(parents=True)
        fetch_wheels(missing, python, source_only(repo / "uv.lock"), staging / "wheels")
        cache = bundle / "cache"
        cache.mkdir(exist_ok=True)
        piece = min(capacity, 60 * MIB)
        for old in cache.glob(f"{DATA_NAME}.part-*"):
            old.unlink()
        parts = pack_data(args.tar, cache, piece)
        for part in [*parts, cache / f"{DATA_NAME}.sha256"]:
            shutil.copy(part, staging / part.name)
            if part in parts:
                part.unlink()
        items = sorted(staging.iterdir())
        folders = stage_folders(bundle, plan_calls(items, capacity))
        staging.rmdir()
        plan = plan_text(folders, beside, int(args.part_mib * MIB), missing)
        (bundle / "PLAN.md").write_text(plan)
        print(plan, end="")
        print(f"gpu-bundle: {len(missing)} of {len(resolved)} packages travel; "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        if args.rehearse:
            rehearse(repo, args.image, python, resolved, folders)
    except Refusal as refusal:
        print(f"gpu-bundle: {refusal}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
