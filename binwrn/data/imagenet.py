"""Find ImageNet (ILSVRC-2012) in the standard folder layout and list its files.

Layout (the one torchvision's ImageFolder and ImageNet classes read):
    <root>/train/<wnid>/*.JPEG    1,281,167 images in 1000 class folders
    <root>/val/<wnid>/*.JPEG      50,000 images, sorted into the same 1000 class folders
Class index = position of the wnid in sorted order (the usual ImageNet label order).

The official validation tarball is flat (50,000 files, labels in the devkit): it must be
sorted into class folders first. `data.download=true` does that, and extracts the training
tarball, from the official files placed in <root> (ImageNet cannot be downloaded without an
account): their MD5s, which image-net.org publishes with the download links, are checked
before anything is extracted; torchvision's ImageNet parser does the sorting. The extracted
folders themselves have no official checksums, so only their layout is checked here.

Nothing is decoded here: the images are read per batch by loader workers
(binwrn.data.imagenet_loader), since 1.28M JPEGs do not fit in memory as arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binwrn.data.arrays import balanced_subset
from binwrn.data.file_lock import exclusive
from binwrn.errors import DataError

SPLITS = ("train", "val")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}  # the release is all .JPEG (one PNG inside)
TARBALLS = {  # name and MD5 as published with the ILSVRC-2012 download links
    "devkit": ("ILSVRC2012_devkit_t12.tar.gz", "fa75699e90414af021442c21a62c3abf"),
    "train": ("ILSVRC2012_img_train.tar", "1d675b47d978889d74fa0da5fadfb00e"),
    "val": ("ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622"),
}
LAYOUT = ("{root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (the validation images "
          "sorted into the same class folders; see docs/imagenet.md)")


@dataclass(frozen=True)
class FileSplit:
    """Image paths with int64 labels: one split, listed but not decoded.

    The paths are one bytes array, not 1.28M Python strings: every loader worker is a fork,
    and reading a list's strings touches their reference counts, which copies each page
    into every worker (PyTorch's known DataLoader "memory leak"); an array is one object.
    """

    paths: np.ndarray  # dtype bytes (S), os.fsencode of each path
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> str:
        return os.fsdecode(self.paths[index])


def _images_in(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:  # scandir: 1.28M files list in seconds
        return sorted(e.path for e in entries
                      if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def _class_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def _list_split(root: Path, split: str, num_classes: int, limit: int | None) -> FileSplit:
    folder = root / split
    classes = _class_folders(folder)
    if not classes:
        loose = len(_images_in(folder))
        raise DataError(
            f"{folder} holds {loose} images but no class folders: expected "
            f"{LAYOUT.format(root=root)}." if loose else
            f"{folder} is empty: expected {LAYOUT.format(root=root)}.")
    if len(classes) != num_classes:
        raise DataError(f"{folder} has {len(classes)} class folders but dataset.num_classes is "
                        f"{num_classes}: point data.root at a tree with {num_classes} classes "
                        "or set dataset.num_classes.")
    paths, labels = [], []
    for index, wnid in enumerate(classes):
        found = _images_in(folder / wnid)
        if not found:
            raise DataError(f"{folder / wnid} holds no images (.JPEG): every class folder of "
                            f"{LAYOUT.format(root=root)} needs its images.")
        paths += found
        labels += [index] * len(found)
    labels = np.asarray(labels, dtype=np.int64)
    keep = balanced_subset(labels, limit)
    return FileSplit(np.array([os.fsencode(p) for p in paths])[keep], labels[keep],
                     tuple(classes))


def _extract_official_tarballs(root: Path) -> None:
    """train/ and val/<wnid>/ from the official tarballs in root, MD5s checked first."""
    from torchvision.datasets import imagenet
    from torchvision.datasets.utils import check_integrity

    for name, _ in TARBALLS.values():  # all present before hours of checksumming
        if not (root / name).is_file():
            raise DataError(f"data.download=true needs the official {name} in {root} (ImageNet "
                            "is downloaded by hand from image-net.org, with an account).")
    for name, md5 in TARBALLS.values():
        if not check_integrity(str(root / name), md5):
            raise DataError(f"{root / name} does not have the official MD5 {md5}: download it "
                            "again (the file is truncated or not the ILSVRC-2012 release).")
    try:
        imagenet.parse_devkit_archive(str(root))
        for split in SPLITS:
            if not (root / split).is_dir():
                getattr(imagenet, f"parse_{split}_archive")(str(root))
    except (OSError, RuntimeError) as err:
        raise DataError(f"Extracting the ImageNet tarballs in {root} failed ({err}).") from None


def check_folders(root: Path, extract: bool = False) -> None:
    """Raise the DataError naming the missing train/ or val/ folder (unless `extract`: the
    official tarballs are unpacked first); lists no file."""
    missing = [split for split in SPLITS if not (root / split).is_dir()]
    if missing and not extract:
        tarballs = [name for name, _ in TARBALLS.values() if (root / name).is_file()]
        hint = (f"; data.download=true extracts {', '.join(tarballs)} found there into it, "
                "checking their MD5s" if tarballs else "")
        raise DataError(f"No ImageNet {' or '.join(missing)} folder under data.root={root}: "
                        f"expected {LAYOUT.format(root=root)}{hint}.")


def list_imagenet(
    root: str | Path | None, num_classes: int, train_limit: int | None = None,
    test_limit: int | None = None, extract: bool = False,
) -> tuple[FileSplit, FileSplit]:
    """The train and val file lists; limits keep class-balanced subsets (smoke runs)."""
    if not root:
        raise DataError(f"No data.root is set for imagenet: set data.root to a folder holding "
                        f"{LAYOUT.format(root='<root>')}.")
    root = Path(root).expanduser()
    if extract and any(not (root / split).is_dir() for split in SPLITS):
        with exclusive(root / ".binwrn-extract.lock"):  # one DDP rank of a machine extracts
            if any(not (root / split).is_dir() for split in SPLITS):
                _extract_official_tarballs(root)
    check_folders(root)
    train = _list_split(root, "train", num_classes, train_limit)
    val = _list_split(root, "val", num_classes, test_limit)
    if train.classes != val.classes:
        raise DataError(f"{root}/train and {root}/val name different class folders: give both "
                        "the same wnids.")
    return train, val
