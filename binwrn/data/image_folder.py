"""Reader for an ImageFolder tree: `root/train/<class>/*`, `root/test/<class>/*`.

Class index = position of the class folder in sorted order (for CIFAR-10 this equals the
official label index). Decoded images are cached as uint8 arrays, keyed by the tree's file
list, sizes and times, so a second start skips decoding.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from binwrn.data.arrays import ImageSplit, balanced_subset
from binwrn.data.file_lock import exclusive
from binwrn.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


def is_image_folder(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _list_split(folder: Path) -> tuple[list[str], list[Path], np.ndarray]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [index] * len(found)
    return classes, files, np.asarray(labels, dtype=np.int64)


def _decode(paths: list[Path], size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                pixels = np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"Cannot read image {path} ({err}): replace or remove it.") from None
        if pixels.shape[:2] != (size, size):
            raise DataError(
                f"Image {path} is {pixels.shape[1]}x{pixels.shape[0]}, not {size}x{size}."
            )
        out[i] = pixels
    return out


def _decode_parallel(paths: list[Path], size: int) -> np.ndarray:
    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or len(paths) < 2000:
        return _decode(paths, size)
    chunks = [paths[i : i + 1000] for i in range(0, len(paths), 1000)]
    with ProcessPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(_decode, chunks, [size] * len(chunks))))


def _cache_key(root: Path, files: list[Path], size: int) -> str:
    digest = hashlib.sha256(f"{root.resolve()}|{size}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _cached(cache_file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cache's images when the file is there with the expected shape."""
    if not cache_file.is_file():
        return None
    images = np.load(cache_file, allow_pickle=False)
    return images if images.shape == shape else None


def read_image_folder(
    root: Path, split: str, num_classes: int, size: int, cache_dir: Path,
    limit: int | None = None,
) -> ImageSplit:
    """Decode one split to uint8 arrays, through the cache; `limit` keeps a balanced subset."""
    classes, files, labels = _list_split(root / split)
    if len(classes) != num_classes:
        raise DataError(
            f"{root / split} has {len(classes)} class folders but the data set has "
            f"{num_classes} classes: point data.root at a tree with {num_classes}."
        )
    keep = balanced_subset(labels, limit)
    files, labels = [files[i] for i in keep], labels[keep]
    if not files:
        raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    cache_file = cache_dir / f"imagefolder-{split}-{_cache_key(root, files, size)}.npy"
    shape = (len(files), size, size, 3)
    if (images := _cached(cache_file, shape)) is not None:  # warm: no lock, ranks read at once
        return ImageSplit(images, labels, tuple(classes))
    # DDP ranks of one machine: the first decodes and writes the cache, the others wait for it.
    with exclusive(cache_file.with_suffix(".lock")):
        if (images := _cached(cache_file, shape)) is not None:
            return ImageSplit(images, labels, tuple(classes))
        images = _decode_parallel(files, size)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as f:
            np.save(f, images, allow_pickle=False)
        partial.replace(cache_file)  # atomic: a killed run never leaves half a cache file
    return ImageSplit(images, labels, tuple(classes))
