"""Reader for MNIST in its official IDX files, as torchvision lays them out.

Layout: `<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (torchvision's
download keeps both the `.gz` archives and their decompressed copies there), or the same
files directly in `<root>`, compressed or not.

IDX format (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic number 0x00000803
(uint8 images, 3 dimensions) or 0x00000801 (uint8 labels, 1 dimension), then one int32 per
dimension (count, rows, columns), then the bytes row-major. Both are checked, and the file
must hold exactly the bytes its header announces; the sizes are checked against the file's
length before anything is allocated (a header is untrusted: negative or huge sizes are one
sentence, not a traceback or a memory error).

Where a `.gz` archive is present it is the file read, after its MD5 matched the official one
(torchvision's table), so what is verified is what is read; a decompressed file alone is read
with the structural checks only (no official MD5 exists for it).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from binwrn.data.arrays import ImageSplit
from binwrn.errors import DataError

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# The MD5 sums of the official archives (torchvision.datasets.MNIST.resources).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
MAX_GZIP_RATIO = 1032  # deflate's most: 258 bytes from one 2-bit code, plus headers
CHUNK = 1 << 20


def _found(folder: Path, name: str) -> Path | None:
    """The archive where there is one, else the decompressed file, else None."""
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            return path
    return None


def mnist_folder(root: Path) -> Path | None:
    """`root/MNIST/raw` (torchvision's layout) or `root`, whichever holds all four files."""
    for candidate in (root / "MNIST" / "raw", root):
        if all(_found(candidate, n) for pair in FILES.values() for n in pair):
            return candidate
    return None


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _check_official_md5(path: Path) -> None:
    found, official = _md5(path), OFFICIAL_MD5[path.name]
    if found != official:
        raise DataError(f"{path} has MD5 {found}, not the official {official} (truncated or "
                        "altered): replace it with the official file, or set "
                        "data.verify_checksums=false for files you made yourself.")


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _read_exactly(file: BinaryIO, count: int) -> bytes:
    """Up to `count` bytes, a chunk at a time: memory grows with the data that is there,
    never with what a header claims."""
    chunks = []
    while count > 0 and (chunk := file.read(min(count, CHUNK))):
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _idx_array(path: Path, magic: int, dims: int) -> np.ndarray:
    """The uint8 array of an IDX file whose header must carry `magic` and `dims` sizes.

    The header is read first and its sizes checked against the file's length before any
    data is read: a raw file must hold exactly the bytes it announces, an archive no more
    than deflate can expand its length to."""
    header = 4 * (1 + dims)
    try:
        size = path.stat().st_size
        with _open(path) as file:
            head = file.read(header)
            if len(head) < header:
                raise DataError(f"{path} is too short to be an MNIST IDX file: replace it "
                                "with the official file.")
            found_magic, *shape = struct.unpack(f">{1 + dims}i", head)
            if found_magic != magic:
                raise DataError(
                    f"{path} starts with magic number {found_magic:#010x}, not {magic:#010x}: "
                    f"it is not an MNIST {'image' if dims == 3 else 'label'} file; replace it "
                    "with the official one.")
            if min(shape) < 0:
                raise DataError(f"{path} has a negative size in its header (shape "
                                f"{tuple(shape)}): replace it with the official file.")
            count = math.prod(shape)
            if path.suffix != ".gz" and header + count != size:
                raise DataError(f"{path} holds {size} bytes but its header announces "
                                f"{header + count} (shape {tuple(shape)}): replace it with "
                                "the official file.")
            if path.suffix == ".gz" and header + count > MAX_GZIP_RATIO * size:
                raise DataError(f"{path} announces {header + count:,} bytes (shape "
                                f"{tuple(shape)}), more than a {size:,}-byte gzip archive "
                                "can hold: replace it with the official file.")
            data = _read_exactly(file, count)
            trailing = file.read(1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} cannot be read ({err}): replace it with the official "
                        "file.") from None
    if len(data) != count or trailing:
        found = "more" if trailing else len(data)
        raise DataError(f"{path} holds {found} bytes of data but its header announces {count} "
                        f"(shape {tuple(shape)}): replace it with the official file.")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _read_split(folder: Path, split: str, verify_checksums: bool) -> ImageSplit:
    image_file, label_file = (_found(folder, name) for name in FILES[split])
    if verify_checksums:
        for path in (image_file, label_file):
            if path.suffix == ".gz":
                _check_official_md5(path)
    images = _idx_array(image_file, IMAGES_MAGIC, 3)
    labels = _idx_array(label_file, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataError(f"{image_file} holds {len(images)} images but {label_file} "
                        f"{len(labels)} labels: replace them with the official pair.")
    if images.shape[1:] != (28, 28):
        raise DataError(f"{image_file} holds {images.shape[1]}x{images.shape[2]} images, not "
                        "MNIST's 28x28: replace it with the official file.")
    if len(labels) and int(labels.max()) > 9:
        raise DataError(f"{label_file} has label {int(labels.max())}; MNIST's are 0-9: replace "
                        "it with the official file.")
    # A copy: the arrays view the file's immutable bytes, and torch.from_numpy warns on those.
    return ImageSplit(images[..., None].copy(), labels.astype(np.int64),
                      tuple(str(d) for d in range(10)))


def read_mnist(root: Path, verify_checksums: bool = True) -> tuple[ImageSplit, ImageSplit]:
    """(train, test) as uint8 (N, 28, 28, 1) images with int64 labels, in file order (paper 3
    validates on the last 5,000 training images, so the order matters)."""
    root = Path(root)
    folder = mnist_folder(root)
    if folder is None:
        names = [n for pair in FILES.values() for n in pair]
        partial = next((c for c in (root / "MNIST" / "raw", root)
                        if any(_found(c, n) for n in names)), None)
        missing = [n for n in names if partial is None or not _found(partial, n)]
        raise DataError(f"No complete MNIST data under data.root={root} (missing: "
                        f"{', '.join(missing)}): put the official files (each as is or .gz) "
                        f"in {root / 'MNIST' / 'raw'} (torchvision's layout) or in data.root "
                        "itself, or pass data.download=true.")
    return (_read_split(folder, "train", verify_checksums),
            _read_split(folder, "test", verify_checksums))
