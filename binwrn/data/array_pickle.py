"""Unpickling that builds nothing but containers and numpy arrays.

The official CIFAR "python version" batches and the ImageNet32 batches are pickles, and a
pickle can run code when loaded. Their contents are only dicts, lists, strings, numbers and
numpy arrays, so the unpickler refuses every global except the three that rebuild an array.
`encoding="latin1"` reads both Python 2 pickles (CIFAR, written by cPickle) and Python 3 ones
(ImageNet32): it decodes the byte strings of a Python 2 array unchanged.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from binwrn.errors import DataError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_array_pickle(path: Path) -> object:
    """The object pickled in `path`; raises pickle.UnpicklingError on any other global."""
    with path.open("rb") as f:
        return _ArrayOnlyUnpickler(f, encoding="latin1").load()


def load_planar_batch(path: Path, label_key: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of a CIFAR-style batch dict: 'data' uint8 (N, 3072), each row one 32x32
    image as its red, green and blue planes in turn (row-major), and N labels under
    `label_key`, as stored. `kind` names the data set in the one-sentence errors."""
    try:
        entry = load_array_pickle(path)
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path} is not a readable {kind} batch ({err}): replace it with the official file."
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DataError(f"{path} does not hold 32x32x3 images with one label each.")
    return data, labels
