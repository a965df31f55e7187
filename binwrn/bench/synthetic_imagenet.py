"""A generated ImageNet in the official release's folder layout, for tests and the loader bench.

`<root>/train/<wnid>/<wnid>_<n>.JPEG` and `<root>/val/<wnid>/ILSVRC2012_val_<n>.JPEG`: the
release's wnid folder names, file names and .JPEG suffix. Each image is a baseline JPEG
(quality 90) of a colour gradient, a bilinearly upsampled random texture and noise: at
500x375 that is about 110 KB, the release's mean file size (138 GB of training tarball over
1,281,167 images), so it costs the decoder about what a real photo does. Seeded: the same
arguments write the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331",
         "n01498041", "n01514668", "n01514859", "n01518878")  # the release's first ten


def photo_like(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) with a photo's mix of smooth areas and detail."""
    ys, xs = np.mgrid[0:height, 0:width]
    gradient = rng.uniform(0, 255, 3) + rng.uniform(-0.4, 0.4, 3) * xs[..., None] \
        + rng.uniform(-0.4, 0.4, 3) * ys[..., None]
    coarse = rng.integers(0, 256, (height // 2 + 1, width // 2 + 1, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    pixels = 0.4 * gradient + 0.6 * texture + rng.normal(0, 8, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_jpeg_tree(
    root: str | Path, classes: int = 3, train_per_class: int = 4, val_per_class: int = 2,
    sizes: tuple[tuple[int, int], ...] = ((48, 36), (36, 48), (64, 48), (40, 40)),
    seed: int = 0,
) -> dict[str, list[tuple[Path, int]]]:
    """Write the tree (sizes are (width, height), used in turn); returns split ->
    [(path, label)] in the order binwrn lists them: by class, then by path."""
    if classes > len(WNIDS):
        raise ValueError(f"at most {len(WNIDS)} classes")
    rng = np.random.default_rng(seed)
    root, written, serial = Path(root), {"train": [], "val": []}, 0
    for label, wnid in enumerate(WNIDS[:classes]):
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                name = (f"{wnid}_{i + 1}.JPEG" if split == "train"
                        else f"ILSVRC2012_val_{serial + 1:08d}.JPEG")
                width, height = sizes[serial % len(sizes)]
                serial += 1
                Image.fromarray(photo_like(rng, width, height)).save(
                    folder / name, format="JPEG", quality=90)
                written[split].append((folder / name, label))
    return {split: sorted(items, key=lambda item: (item[1], str(item[0])))
            for split, items in written.items()}
