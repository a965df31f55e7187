"""A generated CIFAR-10 in the official "python version" layout (data_batch_1..5, test_batch),
full size by default, for the bench's whole-run row: `binwrn-run dataset=cifar10
data.verify_checksums=false` reads it as it reads the real files (their MD5s are not the
official ones, hence the switch). The step time does not depend on the pixels."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np


class _Python2Pickler(pickle.Pickler):
    """Arrays pickled as the official files have them (Python 2: text arguments and state),
    which is what binwrn's array-only unpickler reads."""

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            func, args, state = obj.__reduce__()
            text = [tuple(a.decode("latin1") if isinstance(a, bytes) else a for a in part)
                    for part in (args, state)]
            return func, *text
        return NotImplemented


def _dump(obj: dict, path: Path) -> None:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray\n",
                                               b"numpy.core.multiarray\n"))


def write_cifar10(root: Path, train_per_batch: int = 10_000, test: int = 10_000,
                  seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` with 5 x `train_per_batch` training and `test` test images."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [*((f"data_batch_{i}", train_per_batch) for i in range(1, 6)),
                    ("test_batch", test)]:
        _dump({"labels": (np.arange(n) % 10).tolist(),
               "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, folder / name)
    return root
