"""The packed `.bwn` file: bytes <-> `PackedModel`, with NumPy and the standard library only.

Layout (docs/packed-format.md has the byte-level description for writers of other readers):

    magic (8 bytes) | version (uint32 LE) | header length H (uint32 LE) | header (H bytes of
    UTF-8 JSON) | zero padding to a multiple of 64 | data (every tensor, at the offsets the
    header gives) | SHA-256 of all the bytes before it (32 bytes)

Tensors are either `sign_bits` (one bit per weight, b=1 for +1, paper-spec 1.7, packed most
significant bit first in row-major order) or little-endian `float32`. Reading never unpickles
anything: the header is JSON, arrays come from `np.frombuffer`, so a file cannot run code.
Every check a damaged file can fail raises `DataError` with one sentence; a file whose
checksum is valid but whose header does not describe one consistent net is refused the same
way (`format_checks`).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from binwrn.errors import DataError
from binwrn.export.format_checks import check_packed, check_tensor_records

MAGIC = b"\x89BWN\r\n\x1a\n"  # PNG-style: non-ASCII first byte, catches text-mode transfers
VERSION = 1
PREFIX = struct.Struct("<8sII")  # magic, version, header length
DATA_ALIGN = 64
CHECKSUM_BYTES = 32
DTYPES = ("sign_bits", "float32")
OWNED_KEYS = ("format", "version", "data_bytes", "tensors")  # written here, not by callers


@dataclass(frozen=True)
class PackedModel:
    """A header (plain JSON-able dict) and named tensors.

    Binary weights are int8 arrays of +1/-1 (their `sign_bits` on disk); everything else is
    float32. Insertion order is file order within each kind.
    """

    header: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FileLayout:
    """Where a file's bytes go, for the size report."""

    prefix_and_header: int
    padding: int
    sign_bits: int
    float32: int
    checksum: int = CHECKSUM_BYTES

    @property
    def total(self) -> int:
        return (self.prefix_and_header + self.padding + self.sign_bits + self.float32
                + self.checksum)


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def _dtype_of(name: str, array: np.ndarray) -> str:
    if array.dtype == np.int8:
        if not np.all(np.abs(array) == 1):
            raise ValueError(f"{name}: a sign tensor holds only +1 and -1")
        return "sign_bits"
    if array.dtype == np.float32:
        return "float32"
    raise ValueError(f"{name}: tensors are int8 signs or float32, not {array.dtype}")


def _nbytes(dtype: str, shape: list[int]) -> int:
    count = math.prod(shape)
    return math.ceil(count / 8) if dtype == "sign_bits" else 4 * count


def _to_bytes(dtype: str, array: np.ndarray) -> bytes:
    if dtype == "sign_bits":
        return np.packbits(array.reshape(-1) > 0, bitorder="big").tobytes()
    return array.astype("<f4", copy=False).tobytes(order="C")


def encode(packed: PackedModel) -> tuple[bytes, FileLayout]:
    """The file's bytes: sign-bit tensors first, then float32 ones (4-byte aligned)."""
    kinds = {name: _dtype_of(name, a) for name, a in packed.tensors.items()}
    order = [n for n in kinds if kinds[n] == "sign_bits"] + \
            [n for n in kinds if kinds[n] == "float32"]
    records, chunks, offset, sizes = [], [], 0, {"sign_bits": 0, "float32": 0}
    for name in order:
        dtype, array = kinds[name], packed.tensors[name]
        start = _align(offset, 4 if dtype == "float32" else 1)
        chunks.append(b"\0" * (start - offset))
        blob = _to_bytes(dtype, array)
        records.append({"name": name, "dtype": dtype, "shape": list(array.shape),
                        "offset": start, "nbytes": len(blob)})
        chunks.append(blob)
        sizes[dtype] += len(blob)
        offset = start + len(blob)
    header = {"format": "binwrn-packed", "version": VERSION, **packed.header,
              "data_bytes": offset, "tensors": records}
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    prefix = PREFIX.pack(MAGIC, VERSION, len(text)) + text
    padding = _align(len(prefix), DATA_ALIGN) - len(prefix)
    body = prefix + b"\0" * padding + b"".join(chunks)
    layout = FileLayout(len(prefix), padding + offset - sum(sizes.values()),
                        sizes["sign_bits"], sizes["float32"])
    return body + hashlib.sha256(body).digest(), layout


def _refuse(name: str, problem: str, fix: str = "export it again with binwrn-export") -> None:
    raise DataError(f"{name} {problem}: {fix}.")


def _read_prefix(blob: bytes, name: str) -> tuple[int, dict | None]:
    """Header length and, if it parses, the header; checks signature and version first."""
    if len(blob) < PREFIX.size or blob[:8] != MAGIC:
        if MAGIC.startswith(blob[:8]) and len(blob) < PREFIX.size + CHECKSUM_BYTES:
            _refuse(name, f"is truncated ({len(blob)} bytes, shorter than any .bwn file)")
        _refuse(name, "is not a binwrn packed model (it does not start with the .bwn signature)",
                "give a file written by binwrn-export")
    _, version, header_len = PREFIX.unpack_from(blob)
    if version != VERSION:
        _refuse(name, f"is packed-format version {version}, but this binwrn reads version "
                f"{VERSION} only", "export it again with this binwrn, or read it with the "
                "binwrn that wrote it")
    try:
        header = json.loads(blob[PREFIX.size:PREFIX.size + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...
        header = None  # damaged: the checksum below names the problem
    return header_len, header if isinstance(header, dict) else None


def _check_length_and_checksum(blob: bytes, name: str, header_len: int, header) -> int:
    data_start = _align(PREFIX.size + header_len, DATA_ALIGN)
    data_bytes = header.get("data_bytes") if header else None
    if isinstance(data_bytes, int) and data_bytes >= 0:
        expected = data_start + data_bytes + CHECKSUM_BYTES
        if len(blob) < expected:
            _refuse(name, f"is truncated ({len(blob):,} of {expected:,} bytes)")
        if len(blob) > expected:
            _refuse(name, f"has {len(blob) - expected:,} unexpected bytes after its end "
                    "(it is corrupted)")
    elif len(blob) < PREFIX.size + header_len + CHECKSUM_BYTES:
        _refuse(name, f"is truncated ({len(blob):,} bytes, shorter than its own header)")
    body, stored = blob[:-CHECKSUM_BYTES], blob[-CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != stored or header is None:
        _refuse(name, "is corrupted (its SHA-256 checksum does not match its contents)",
                "export it again or copy it again from where it was written")
    return data_start


def _read_tensor(blob: bytes, name: str, data_start: int, data_bytes: int, record) -> tuple:
    try:
        tname, dtype, shape = record["name"], record["dtype"], [int(s) for s in record["shape"]]
        offset, nbytes = int(record["offset"]), int(record["nbytes"])
    except (KeyError, TypeError, ValueError):
        _refuse(name, "is malformed (a tensor record lacks name, dtype, shape, offset or "
                "nbytes)")
    if dtype not in DTYPES or any(s < 0 for s in shape) or nbytes != _nbytes(dtype, shape) \
            or offset < 0 or offset + nbytes > data_bytes:
        _refuse(name, f"is malformed (tensor {tname} has an impossible dtype, shape or "
                "position)")
    raw = blob[data_start + offset:data_start + offset + nbytes]
    count = math.prod(shape)
    if dtype == "sign_bits":
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count, bitorder="big")
        array = (bits.astype(np.int8) * 2 - 1).reshape(shape)
    else:
        array = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)
    return tname, array


def decode(blob: bytes, name: str = "the packed model") -> PackedModel:
    """Check signature, version, length and checksum, then read header and tensors."""
    header_len, header = _read_prefix(blob, name)
    data_start = _check_length_and_checksum(blob, name, header_len, header)
    check_tensor_records(header, name)  # a valid checksum over a hand-made header
    tensors = dict(_read_tensor(blob, name, data_start, header["data_bytes"], r)
                   for r in header["tensors"])
    check_packed(header, tensors, name)  # model block, layers and tensors: one net
    return PackedModel({k: v for k, v in header.items() if k not in OWNED_KEYS}, tensors)


def write_bytes(path: str | Path, blob: bytes) -> None:
    """Write atomically: a temporary file beside `path`, renamed into place."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"Cannot write {path}: it is a folder; name a file in it, e.g. "
                        f"{path / 'model.bwn'}.")
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(blob)
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)  # nothing half written is left behind
        raise DataError(f"Cannot write {path} ({err.strerror}): choose a path in a writable "
                        "folder.") from None


def write_packed(path: str | Path, packed: PackedModel) -> FileLayout:
    """Encode and write `packed`; returns the byte layout."""
    blob, layout = encode(packed)
    write_bytes(path, blob)
    return layout


def read_packed(path: str | Path) -> PackedModel:
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read {path} ({err.strerror}): give the path of a .bwn "
                        "file written by binwrn-export.") from None
    return decode(blob, str(path))
