"""Tiny data sets on disk in the layouts binwrn reads, for unit and end-to-end tests.

The CIFAR writers produce the official "python version" layout that torchvision downloads
(https://www.cs.toronto.edu/~kriz/cifar.html): each batch is a pickled dict whose 'data' is a
uint8 array of N rows x 3072 columns, channel-major (the 1024 red values, then green, then
blue, each plane row-major), with 'labels' (CIFAR-10) or 'fine_labels'/'coarse_labels'
(CIFAR-100) as lists of ints.

The official files were written by Python 2's cPickle (protocol 2): the array is rebuilt with
`numpy.core.multiarray._reconstruct` and its bytes are a Python 2 `str`, which Python 3 reads
with encoding="latin1". `_dump_like_python2` reproduces that byte layout, so the readers are
tested against the same opcodes and globals the real files contain (a plain Python 3 pickle
would name `numpy._core.multiarray` and wrap bytes in `_codecs.encode`).

Every writer returns the arrays it wrote, so a test can compare what it reads back.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


class _Python2StylePickler(pickle.Pickler):
    """Pickle ndarrays as Python 2 did: text args and state, no `_codecs.encode` wrapper."""

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            func, args, state = obj.__reduce__()
            args = tuple(a.decode("latin1") if isinstance(a, bytes) else a for a in args)
            state = tuple(s.decode("latin1") if isinstance(s, bytes) else s for s in state)
            return func, args, state
        return NotImplemented


def _dump_like_python2(obj, path: Path) -> None:
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(obj)
    blob = buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"_codecs" not in blob
    path.write_bytes(blob)


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """n labels covering the classes as evenly as possible, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def write_cifar10_pickles(
    root: str | Path, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray | Path]:
    """Write `root/cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta).

    Returns the raw rows and labels written: train_data (5*n_train_per_batch x 3072, the
    batches concatenated in order 1..5), train_labels, test_data, test_labels, and folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_data, train_labels = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, (n_train_per_batch, 3072), dtype=np.uint8)
        labels = _balanced_labels(rng, n_train_per_batch, 10)
        _dump_like_python2(
            {"batch_label": f"training batch {i} of 5", "labels": labels.tolist(),
             "data": data, "filenames": [f"img_{i}_{j}.png" for j in range(n_train_per_batch)]},
            folder / f"data_batch_{i}",
        )
        train_data.append(data)
        train_labels.append(labels)
    test_data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = _balanced_labels(rng, n_test, 10)
    _dump_like_python2(
        {"batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(),
         "data": test_data, "filenames": [f"test_{j}.png" for j in range(n_test)]},
        folder / "test_batch",
    )
    _dump_like_python2(
        {"num_cases_per_batch": n_train_per_batch, "label_names": CIFAR10_CLASSES,
         "num_vis": 3072},
        folder / "batches.meta",
    )
    return {
        "folder": folder,
        "train_data": np.concatenate(train_data), "train_labels": np.concatenate(train_labels),
        "test_data": test_data, "test_labels": test_labels,
    }


def write_cifar100_pickles(
    root: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0
) -> dict[str, np.ndarray | Path]:
    """Write `root/cifar-100-python/` (train, test, meta).

    Returns train_data, train_labels (fine), train_coarse, test_data, test_labels (fine),
    test_coarse and folder. Coarse labels are chosen to differ from the fine ones.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray | Path] = {"folder": folder}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = _balanced_labels(rng, n, 100)
        coarse = (fine // 5 + 7) % 20
        _dump_like_python2(
            {"filenames": [f"{split}_{j}.png" for j in range(n)], "batch_label": split,
             "fine_labels": fine.tolist(), "coarse_labels": coarse.tolist(), "data": data},
            folder / split,
        )
        out[f"{split}_data"], out[f"{split}_labels"], out[f"{split}_coarse"] = data, fine, coarse
    _dump_like_python2(
        {"fine_label_names": [f"fine_{i}" for i in range(100)],
         "coarse_label_names": [f"coarse_{i}" for i in range(20)]},
        folder / "meta",
    )
    return out


def write_image_folder(
    root: str | Path, classes: list[str], n_train_per_class: int, n_test_per_class: int,
    seed: int = 0, size: int = 32,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write `root/{train,test}/<class>/<index>.png` (lossless RGB PNGs, `size` x `size`).

    Returns split -> (images uint8 (N, size, size, 3), labels int64) in the order an
    ImageFolder reader yields them: classes sorted by name (label = sorted position), files
    sorted by name within a class.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    written: dict[str, dict[str, list[np.ndarray]]] = {}
    for split, per_class in (("train", n_train_per_class), ("test", n_test_per_class)):
        written[split] = {}
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images = rng.integers(0, 256, (per_class, size, size, 3), dtype=np.uint8)
            for j, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{j:05d}.png")
            written[split][name] = list(images)
    out = {}
    for split, by_class in written.items():
        images, labels = [], []
        for index, name in enumerate(sorted(classes)):
            images += by_class[name]
            labels += [index] * len(by_class[name])
        out[split] = (
            np.stack(images) if images else np.empty((0, size, size, 3), np.uint8),
            np.asarray(labels, dtype=np.int64),
        )
    return out


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic 0x0000080N
    (uint8 data, N dimensions), one int32 per dimension, then the bytes row-major."""
    header = np.array([0x800 + array.ndim, *array.shape], dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_idx(
    root: str | Path, n_train: int = 30, n_test: int = 20, seed: int = 0,
    layout: str = "torchvision", compressed: tuple[bool, ...] = (True, False),
) -> dict[str, np.ndarray | Path]:
    """Write MNIST's four IDX files with random 28x28 digits and balanced labels 0-9.

    layout "torchvision": `root/MNIST/raw/` as torchvision's download leaves it; "flat": the
    files in `root`. `compressed` lists the forms written: True the `.gz` archive, False the
    decompressed file (torchvision keeps both). Returns train_images (N, 28, 28),
    train_labels, test_images, test_labels and folder.
    """
    import gzip

    rng = np.random.default_rng(seed)
    folder = Path(root) / "MNIST" / "raw" if layout == "torchvision" else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray | Path] = {"folder": folder}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = _balanced_labels(rng, n, 10)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            blob = _idx_bytes(array.astype(np.uint8))
            name = f"{prefix}-{kind}-ubyte"
            for gz in compressed:
                (folder / (name + ".gz" if gz else name)).write_bytes(
                    gzip.compress(blob, mtime=0) if gz else blob)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def write_svhn_mat(
    root: str | Path, n_train: int = 20, n_test: int = 10, n_extra: int = 0, seed: int = 0,
) -> dict[str, np.ndarray | Path]:
    """Write SVHN's `train_32x32.mat`, `test_32x32.mat` (and `extra_32x32.mat` when n_extra)
    in `root`, as http://ufldl.stanford.edu/housenumbers/ serves them: MATLAB v5 files with X,
    uint8 (32, 32, 3, N), and y, uint8 (N, 1) with labels 1-10, 10 standing for the digit 0.

    Returns, per split, `<split>_X` and `<split>_y` exactly as written, and folder.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray | Path] = {"folder": folder}
    for split, n in (("train", n_train), ("test", n_test), ("extra", n_extra)):
        if split == "extra" and not n:
            continue
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (_balanced_labels(rng, n, 10) + 1).astype(np.uint8)[:, None]  # 1..10
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out[f"{split}_X"], out[f"{split}_y"] = x, y
    return out


def write_imagenet32_batches(
    root: str | Path, n_per_batch: int = 4, n_val: int = 10, seed: int = 0,
    layout: str = "official",
) -> dict[str, np.ndarray | Path]:
    """Write ImageNet32's `train_data_batch_1..10` and `val_data` as the official
    Imagenet32_train.zip / Imagenet32_val.zip unpack them (layout "official":
    `root/Imagenet32_train/`, `root/Imagenet32_val/`; "flat": all in `root`).

    Each is a Python 3 pickle (protocol 3, as the dataset's scripts wrote them with
    pickle.dump under the numpy 1.x of 2017, hence numpy.core) of a dict: 'data', uint8
    (N, 3072) planar RGB rows as CIFAR's; 'labels', a list of ints 1-1000; training batches
    also 'mean', the float64 mean row. Returns train_data, train_labels (1-based, batches in
    order 1..10), val_data, val_labels.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    train_dir = root / "Imagenet32_train" if layout == "official" else root
    val_dir = root / "Imagenet32_val" if layout == "official" else root
    out: dict[str, np.ndarray | Path] = {}
    rows, labels = [], []
    for _ in range(10):
        rows.append(rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8))
        labels.append(rng.integers(1, 1001, n_per_batch))
    mean = np.concatenate(rows).mean(axis=0)
    for i, (data, y) in enumerate(zip(rows, labels, strict=True), start=1):
        _dump_protocol_3({"data": data, "labels": y.tolist(), "mean": mean},
                         train_dir / f"train_data_batch_{i}")
    val = rng.integers(0, 256, (n_val, 3072), dtype=np.uint8)
    val_labels = rng.integers(1, 1001, n_val)
    _dump_protocol_3({"data": val, "labels": val_labels.tolist()}, val_dir / "val_data")
    out.update(train_data=np.concatenate(rows), train_labels=np.concatenate(labels),
               val_data=val, val_labels=val_labels)
    return out


def _dump_protocol_3(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(obj, protocol=3)
    path.write_bytes(blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
