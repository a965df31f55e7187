"""Property-based tests of the readers of untrusted files: `.bwn`, MNIST IDX, pickled batches.

Hypothesis feeds each reader random files and real valid files this test writes, then
damaged: bytes flipped, the file cut short, bytes spliced in, header fields rewritten with
random values. Where the format has a checksum it is re-sealed (the `.bwn` SHA-256, the gzip
CRC by compressing again), so the damage reaches the parser instead of the checksum.

The property, for every file: the reader returns valid data or raises `DataError` with one
line, never another exception; and the memory it allocates (tracemalloc's peak, which sees
NumPy's buffers too) stays within a bound derived from the file's length:

- `.bwn`: 40 x the file (the sign bits expand to int8 weights, eight per byte, and NumPy
  makes a few temporaries of that size), plus 2 MiB; what is accepted must also run, with
  the same logits in the NumPy runtime and the rebuilt PyTorch model;
- IDX: 4 x the file, or for a gzip archive 2 x deflate's 1032:1 limit, plus 2 MiB;
- pickles: 100 x the file plus 2 MiB (arrays are held to the file's own size; the factor is
  Python's objects, e.g. 80 bytes for a one-byte empty dict).

Examples are derandomized (the same every run, so CI is stable) and no database is written
(`database=None`); about 20 s in all on 2 cores.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from helpers_untrusted import (
    batch_pickle,
    idx_header,
    reseal,
    seal_bwn,
    split_bwn,
    valid_bwn,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from binwrn.data.array_pickle import load_planar_batch
from binwrn.data.mnist import _idx_array
from binwrn.errors import DataError
from binwrn.export.format import decode
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.pack import rebuild_wrn, torch_logits

MIB = 1 << 20


def _settings(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _within_contract(read, bound: int):
    """read()'s result, or None where it raised DataError; any other exception fails the
    test, and so does a tracemalloc peak above `bound`."""
    tracemalloc.start()
    try:
        result = read()
    except DataError as err:
        message = str(err)
        assert message and "\n" not in message, message
        words = message.split(" ", 1)[1] if " " in message else message  # the file's name off
        event("refused: " + re.sub(r"-?(0x)?\d[\w,]*", "N", words)[:50])
        result = None
    else:
        event("accepted")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= bound, f"peak {peak:,} bytes over the bound {bound:,}"
    return result


# ----------------------------------------------------------------------------- mutations


@st.composite
def damaged(draw, blob: bytes) -> bytes:
    """`blob` with one to three random damages."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "cut", "splice", "delete", "int"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del data[at:]
        elif how == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif how == "int" and len(data) >= 4:  # a 4-byte field rewritten with a random int
            at = min(at, len(data) - 4)
            data[at:at + 4] = draw(st.integers(-2**31, 2**31 - 1)).to_bytes(4, "big",
                                                                          signed=True)
    return bytes(data)


JSON_VALUES = st.one_of(
    st.integers(-3, 70), st.integers(-2**70, 2**70), st.floats(), st.none(), st.booleans(),
    st.text(max_size=6), st.lists(st.integers(-1, 40), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(-1, 9), max_size=2))


def _leaves(node, path=()):
    """Every (container path, key) of a JSON value, lists and dicts alike."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield path, key
        if isinstance(value, dict | list):
            yield from _leaves(value, (*path, key))


@st.composite
def rewritten_bwn(draw, kind: str) -> bytes:
    """A valid file whose header has one to three fields replaced (or removed), re-sealed."""
    header, data = split_bwn(valid_bwn(kind))
    header = json.loads(json.dumps(header))
    for _ in range(draw(st.integers(1, 3))):
        path, key = draw(st.sampled_from(list(_leaves(header))))
        node = header
        for step in path:
            node = node[step]
        value = node[key]
        if isinstance(node, dict) and draw(st.booleans()) and draw(st.booleans()):
            del node[key]
        elif type(value) is int and draw(st.booleans()):  # near the real value: gets further
            node[key] = draw(st.one_of(st.integers(value - 2, value + 2),
                                       st.sampled_from([2 * value, value // 2, 0, 1])))
        elif type(value) is float and draw(st.booleans()):
            node[key] = value * draw(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 1e30]))
        else:
            node[key] = draw(JSON_VALUES)
    return seal_bwn(json.dumps(header).encode(), data)


# ----------------------------------------------------------------------------- .bwn

KINDS = st.sampled_from(["wrn", "shifted", "wrn18"])


def _bwn_contract(blob: bytes) -> None:
    packed = _within_contract(lambda: decode(blob, "m.bwn"), 40 * len(blob) + 2 * MIB)
    if packed is None:
        return
    # Accepted: both runtimes build the same net from it (same logits where finite).
    channels = packed.header["model"].get("in_channels", 3)
    images = np.random.default_rng(0).integers(0, 256, (2, channels, 32, 32)).astype(np.float32)
    numpy_logits = NumpyWRN(packed).logits(images)
    assert numpy_logits.shape == (2, packed.header["model"]["num_classes"])
    with torch.no_grad():
        expected = torch_logits(rebuild_wrn(packed), images)
    if np.isfinite(expected).all() and np.isfinite(numpy_logits).all():
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(numpy_logits - expected).max() <= 1e-3 * scale


@_settings(120)
@given(st.data())
def test_bwn_damaged_and_resealed(data):
    blob = valid_bwn(data.draw(KINDS))
    body = data.draw(damaged(blob[:-32]))
    _bwn_contract(reseal(body + bytes(32)) if data.draw(st.booleans()) else body + blob[-32:])


@_settings(150)
@given(st.data())
def test_bwn_header_fields_rewritten(data):
    _bwn_contract(data.draw(rewritten_bwn(data.draw(KINDS))))


@_settings(30)
@given(st.binary(max_size=512))
def test_bwn_random_bytes(blob):
    _bwn_contract(blob)


@_settings(40)
@given(st.data())
def test_bwn_header_length_and_data_bytes_rewritten(data):
    """The two size fields a reader trusts first: the prefix's header length (uint32) and
    the header's data_bytes, set to random values and re-sealed."""
    blob = bytearray(valid_bwn("wrn"))
    if data.draw(st.booleans()):
        blob[12:16] = struct.pack("<I", data.draw(st.integers(0, 2**32 - 1)))
        blob = reseal(bytes(blob))
    else:
        header, region = split_bwn(bytes(blob))
        header["data_bytes"] = data.draw(st.one_of(st.integers(-2**40, 2**62),
                                                   st.integers(0, len(region) + 64)))
        blob = seal_bwn(json.dumps(header).encode(), region)
    _bwn_contract(bytes(blob))


# ----------------------------------------------------------------------------- MNIST IDX


def _valid_idx(images: bool) -> bytes:
    rng = np.random.default_rng(1)
    if images:
        return idx_header(0x803, 5, 28, 28) + rng.integers(0, 256, 5 * 784, np.uint8).tobytes()
    return idx_header(0x801, 5) + rng.integers(0, 10, 5, np.uint8).tobytes()


def _idx_contract(blob: bytes, images: bool, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("x.gz" if gz else "x")
        path.write_bytes(blob)
        bound = (2 * 1032 if gz else 4) * len(blob) + 2 * MIB
        magic, dims = (0x803, 3) if images else (0x801, 1)
        array = _within_contract(lambda: _idx_array(path, magic, dims), bound)
    if array is not None:
        raw = gzip.decompress(blob) if gz else blob
        header_shape = struct.unpack(f">{dims}i", raw[4:4 + 4 * dims])
        assert array.dtype == np.uint8 and array.shape == header_shape


@_settings(120)
@given(st.data())
def test_idx_damaged(data):
    images, gz = data.draw(st.booleans()), data.draw(st.booleans())
    raw = data.draw(damaged(_valid_idx(images)))
    if gz and data.draw(st.booleans()):  # damage the archive itself: the CRC speaks
        blob = data.draw(damaged(gzip.compress(_valid_idx(images), mtime=0)))
    else:  # re-sealed: the damaged file compressed again, so the parser sees the damage
        blob = gzip.compress(raw, mtime=0) if gz else raw
    _idx_contract(blob, images, gz)


@_settings(80)
@given(st.data())
def test_idx_header_sizes_rewritten(data):
    images, gz = data.draw(st.booleans()), data.draw(st.booleans())
    dims = 3 if images else 1
    valid = _valid_idx(images)
    sizes = data.draw(st.lists(st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(-2, 30)),
                               min_size=dims, max_size=dims))
    body = valid[4 + 4 * dims:]
    raw = valid[:4] + idx_header(*sizes) + body[:data.draw(st.integers(0, len(body)))]
    _idx_contract(gzip.compress(raw, mtime=0) if gz else raw, images, gz)


# ----------------------------------------------------------------------------- pickles


def _pickle_contract(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data_batch_1"
        path.write_bytes(blob)
        result = _within_contract(lambda: load_planar_batch(path, "labels", "CIFAR"),
                                  100 * len(blob) + 2 * MIB)
    if result is not None:
        rows, labels = result
        assert rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[1] == 3072
        assert labels.dtype == np.int64 and labels.shape == (len(rows),)


PICKLES = st.sampled_from([(3, False), (3, True), (40, False), (40, True)])


@_settings(150)
@given(st.data())
def test_pickle_damaged(data):
    n, python2 = data.draw(PICKLES)
    _pickle_contract(data.draw(damaged(batch_pickle(n, python2))))


@st.composite
def array_pickle(draw) -> bytes:
    """A pickle built the way numpy pickles an array, with every size it states random:
    the _reconstruct shape, the dtype, the state's shape and the raw data's length."""
    def long1(n: int) -> bytes:
        raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw

    def shape() -> bytes:
        sizes = draw(st.lists(st.one_of(st.integers(0, 4000), st.integers(-5, 2**64)),
                              min_size=1, max_size=3))
        return b"(" + b"".join(long1(s) for s in sizes) + b"t"

    dtype = draw(st.sampled_from(["u1", "<f8", "<i8", "O8", "V16", "S4", "u1,u1", "(4,)u1"]))
    raw_len = draw(st.one_of(st.integers(0, 3072), st.integers(0, 2**62)))
    raw = bytes(min(raw_len, 4096))
    head = b"\x8e" + raw_len.to_bytes(8, "little") if raw_len > len(raw) else \
        b"B" + len(raw).to_bytes(4, "little")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + shape()
             + b"C\x01b\x87R(K\x01" + shape() + b"cnumpy\ndtype\nX"
             + len(dtype).to_bytes(4, "little") + dtype.encode() + b"\x89\x88\x87R"
             + b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
             + head + raw + b"tb")
    return (b"\x80\x04}(X\x04\x00\x00\x00data" + array
            + b"X\x06\x00\x00\x00labels]K\x01au.")


@_settings(150)
@given(array_pickle())
def test_pickle_array_sizes_random(blob):
    _pickle_contract(blob)


@_settings(30)
@given(st.binary(max_size=512))
def test_pickle_random_bytes(blob):
    _pickle_contract(b"\x80\x04" + blob)
