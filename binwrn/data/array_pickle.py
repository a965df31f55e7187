"""Unpickling that builds nothing but containers and numpy arrays, within the file's size.

The official CIFAR "python version" batches and the ImageNet32 batches are pickles, and a
pickle can run code when loaded. Their contents are only dicts, lists, strings, numbers and
numpy arrays, so the unpickler refuses every global except the three that rebuild an array.
`encoding="latin1"` reads both Python 2 pickles (CIFAR, written by cPickle) and Python 3 ones
(ImageNet32): it decodes the byte strings of a Python 2 array unchanged.

Even the allowed globals can ask for memory the file does not hold: `_reconstruct(ndarray,
(2**40,), b'b')` is a 1 TiB array in 60 bytes, and a `BINBYTES8` length of 2**40 makes
CPython's C unpickler allocate before it reads. So the pure-Python unpickler reads the file
with reads capped at what is left in it (a length beyond the file is never allocated), the
file's length is the budget, and every opcode that can build something is checked first:

- the allowed globals are stand-ins, called only as numpy itself pickles arrays:
  `_reconstruct(ndarray, shape, 'b')` and `dtype(<plain number type>, align, copy)`;
  `ndarray(...)` called directly, `NEWOBJ`, `OBJ` and `INST` are refused;
- the arrays they build, and the state (`BUILD`) that fills them, count against the budget:
  all arrays together hold at most as many bytes as the file (the real batches hold their
  pixels as raw bytes, so they pass with room to spare);
- dtypes are plain numbers (bool, int, uint, float, complex): no object arrays (a list of
  references the budget cannot see), no structured or void types (whose state sets the size),
  and their state may change the byte order only (its flags could make a uint8 type hold
  object pointers).

Other opcodes build at most a few dozen bytes of Python objects per byte of the file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from binwrn.errors import DataError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}
NUMBER_KINDS = "biufc"  # bool, signed, unsigned, float, complex


class _Global:
    """What an allowed global unpickles to: a name the checked opcodes recognise."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"numpy.{self.name}"


_GLOBALS = {name: _Global(name) for name in set(_ALLOWED_GLOBALS.values())}


def _refuse(reason: str):
    raise pickle.UnpicklingError(reason)


def _shape(value) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(n) is int and n >= 0 for n in value):
        _refuse(f"an array shape {value!r} is not a tuple of sizes")
    return value


def _number_dtype(value) -> np.dtype:
    if not isinstance(value, np.dtype) or value.kind not in NUMBER_KINDS \
            or value.fields is not None or value.subdtype is not None:
        _refuse(f"an array of {value!r} is not an array of plain numbers")
    return value


class _Capped:
    """A file whose reads never ask for more than is left in it: `BufferedReader.read(n)`
    allocates n bytes before it reads, and n comes from the pickle. A read of more than is
    left is a truncated pickle (EOFError) before anything is read."""

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        if n > self.left:
            raise EOFError
        data = self.file.read(self.left if n < 0 else n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self.file.readline(self.left)
        self.left -= len(line)
        return line

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[:self.left]
        count = self.file.readinto(view)
        self.left -= count
        return count


class _ArrayOnlyUnpickler(pickle._Unpickler):  # the pure-Python one: every opcode is ours
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        super().__init__(_Capped(file, size), encoding="latin1")
        self.budget = size  # bytes of arrays the file may still ask for
        self.unfilled: dict[int, object] = {}  # arrays and dtypes built, their state to come

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            _refuse(f"refusing to load {module}.{name}")
        return _GLOBALS[_ALLOWED_GLOBALS[module, name]]

    def _charge(self, nbytes: int) -> None:
        if nbytes > self.budget:
            _refuse(f"it asks for an array of {nbytes:,} bytes, more than the file holds")
        self.budget -= nbytes

    def _made(self, obj):
        self.unfilled[id(obj)] = obj  # kept alive, so the id stays this object's
        return obj

    def _call(self, func, args):
        if not isinstance(args, tuple):
            _refuse("a call has no argument tuple")
        if func is _GLOBALS["_reconstruct"]:
            if len(args) != 3 or args[0] is not _GLOBALS["ndarray"] or args[2] not in ("b", b"b"):
                _refuse("_reconstruct is called otherwise than numpy pickles an array")
            shape = _shape(args[1])
            self._charge(math.prod(shape))
            return self._made(np.empty(shape, np.int8))
        if func is _GLOBALS["dtype"]:
            if not 1 <= len(args) <= 3 or not isinstance(args[0], str):
                _refuse("dtype is called otherwise than numpy pickles a type")
            return self._made(np.dtype(_number_dtype(np.dtype(args[0])), copy=True))
        _refuse(f"it calls {func!r}" if isinstance(func, _Global)
                else f"it calls a {type(func).__name__}")

    def load_reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_build(self):
        state = self.stack.pop()
        obj = self.unfilled.pop(id(self.stack[-1]), None)
        if obj is not self.stack[-1]:
            _refuse(f"it sets the state of a {type(self.stack[-1]).__name__}")
        if not isinstance(state, tuple):
            _refuse("a state is not a tuple")
        if isinstance(obj, np.dtype):
            # (version, byte order, subarray, names, fields, size, alignment, flags[, meta]):
            # a plain number type changes at most its byte order. Flags above all: set on a
            # uint8 type, NPY_ITEM_REFCOUNT would make NumPy read its bytes as object pointers.
            if len(state) not in (8, 9) or state[1] not in ("<", ">", "|", "=") \
                    or state[2:5] != (None, None, None) or state[5:7] != (-1, -1) \
                    or type(state[7]) is not int or state[7] != obj.flags:
                _refuse("a dtype state is not a plain number type's")
            obj.__setstate__(state)
            return
        # (version, shape, dtype, fortran order, raw bytes), or the same without version
        if len(state) == 5:
            state = state[1:]
        if len(state) != 4:
            _refuse("an array state is not numpy's")
        shape, dtype, _, raw = state
        nbytes = math.prod(_shape(shape)) * _number_dtype(dtype).itemsize
        if not isinstance(raw, bytes | str) or len(raw) != nbytes:
            _refuse("an array's data does not match its shape")
        self._charge(nbytes)
        obj.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build

    def load_setitems(self):
        items = self.pop_mark()
        if type(self.stack[-1]) is not dict:
            _refuse(f"it sets items of a {type(self.stack[-1]).__name__}")
        for i in range(0, len(items), 2):
            self.stack[-1][items[i]] = items[i + 1]

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        if type(self.stack[-1]) is not dict:
            _refuse(f"it sets an item of a {type(self.stack[-1]).__name__}")
        self.stack[-1][key] = value

    dispatch[pickle.SETITEM[0]] = load_setitem

    def _no_objects(self):
        _refuse("it builds objects (NEWOBJ, OBJ or INST), which array pickles never do")

    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ, pickle.INST):
        dispatch[_opcode[0]] = _no_objects
    del _opcode


def load_array_pickle(path: Path, kind: str = "pickled") -> object:
    """The object pickled in `path`, built within the file's size; DataError with one
    sentence for anything else (a forbidden global, an oversized array, a damaged file)."""
    try:
        file = path.open("rb")
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}): replace it with the "
                        "official file.") from None
    try:
        with file:
            return _ArrayOnlyUnpickler(file, os.fstat(file.fileno()).st_size).load()
    except Exception as err:  # noqa: BLE001 - the file is untrusted: any failure is its own
        if isinstance(err, EOFError | struct.error):  # an opcode or length cut short
            reason = "pickle data was truncated"
        elif isinstance(err, KeyError):  # the unpickler's opcode table or its memo
            reason = f"unknown opcode or memo entry {err}"
        else:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise DataError(f"{path} is not a readable {kind} batch ({reason}): replace it with "
                        "the official file.") from None


def _labels(value, path: Path) -> np.ndarray:
    """A list of ints or a 1-D integer array as int64, checked before anything is copied."""
    if isinstance(value, list) and all(type(v) is int and -2**63 <= v < 2**63 for v in value):
        return np.array(value, dtype=np.int64)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        return value.astype(np.int64)
    raise DataError(f"{path} does not hold its labels as a list of whole numbers: replace it "
                    "with the official file.")


def load_planar_batch(path: Path, label_key: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of a CIFAR-style batch dict: 'data' uint8 (N, 3072), each row one 32x32
    image as its red, green and blue planes in turn (row-major), and N labels under
    `label_key`, as stored. `kind` names the data set in the one-sentence errors."""
    entry = load_array_pickle(path, kind)
    if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
        raise DataError(f"{path} is not a readable {kind} batch (no dict with 'data' and "
                        f"'{label_key}'): replace it with the official file.")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{path} does not hold its images as a uint8 array: replace it with "
                        "the official file.")
    labels = _labels(entry[label_key], path)
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DataError(f"{path} does not hold 32x32x3 images with one label each.")
    return data, labels
