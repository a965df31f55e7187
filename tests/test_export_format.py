"""The .bwn format: bit-exact round trip, the documented bit order and layout, and every
kind of damaged file refused with one sentence (docs/packed-format.md)."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers_export import trained_looking_wrn

from binwrn.errors import DataError
from binwrn.export.format import (
    MAGIC,
    PackedModel,
    decode,
    encode,
    read_packed,
    write_packed,
)
from binwrn.export.pack import pack_wrn

EXPORT_DIR = Path(__file__).resolve().parents[1] / "binwrn" / "export"


@pytest.fixture(scope="module")
def packed() -> PackedModel:
    model, kwargs = trained_looking_wrn(bn_affine=True, first_last_fp32=True)
    return pack_wrn(model, kwargs, {"dataset": "digits"}, {"from": "test"})


@pytest.fixture(scope="module")
def blob(packed) -> bytes:
    return encode(packed)[0]


def _header(blob: bytes) -> tuple[dict, int]:
    _, _, length = struct.unpack_from("<8sII", blob)
    data_start = -(-(16 + length) // 64) * 64
    return json.loads(blob[16:16 + length]), data_start


def _rechecksummed(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_round_trip_is_bit_exact(packed, blob, tmp_path):
    back = decode(blob)
    assert back.header == packed.header
    assert set(back.tensors) == set(packed.tensors)
    for name, array in packed.tensors.items():
        got = back.tensors[name]
        assert got.dtype == array.dtype and got.shape == array.shape, name
        assert got.tobytes() == array.tobytes(), name  # bitwise, NaN-safe
    assert encode(back)[0] == blob
    layout = write_packed(tmp_path / "m.bwn", back)
    assert (tmp_path / "m.bwn").read_bytes() == blob and layout.total == len(blob)
    assert read_packed(tmp_path / "m.bwn").header == packed.header


def test_layout_signature_header_data_checksum(blob):
    assert blob[:8] == MAGIC == b"\x89BWN\r\n\x1a\n"
    assert struct.unpack_from("<I", blob, 8)[0] == 1
    header, data_start = _header(blob)
    assert header["format"] == "binwrn-packed" and header["version"] == 1
    assert data_start % 64 == 0
    assert len(blob) == data_start + header["data_bytes"] + 32
    assert blob[-32:] == hashlib.sha256(blob[:-32]).digest()
    kinds = [t["dtype"] for t in header["tensors"]]
    assert kinds == sorted(kinds, key=lambda k: k != "sign_bits")  # bits first, then floats
    for t in header["tensors"]:
        if t["dtype"] == "float32":
            assert t["offset"] % 4 == 0


def test_sign_bits_are_msb_first_row_major_with_one_for_plus():
    signs = np.array([[1, -1, -1, -1, -1, -1, -1, 1, -1, 1]], dtype=np.int8)  # 10 bits
    blob, layout = encode(PackedModel({}, {"w": signs}))
    header, data_start = _header(blob)
    (record,) = header["tensors"]
    assert record == {"name": "w", "dtype": "sign_bits", "shape": [1, 10], "offset": 0,
                      "nbytes": 2}
    assert blob[data_start:data_start + 2] == bytes([0b10000001, 0b01000000])  # padded with 0
    assert layout.sign_bits == 2


def test_floats_are_little_endian_float32():
    values = np.array([1.0, -2.5, 3e-8], dtype=np.float32)
    blob, _ = encode(PackedModel({}, {"f": values}))
    _, data_start = _header(blob)
    assert blob[data_start:data_start + 12] == struct.pack("<3f", *values)


def test_encoder_refuses_what_it_cannot_store():
    with pytest.raises(ValueError, match="only \\+1 and -1"):
        encode(PackedModel({}, {"w": np.array([1, 0, -1], dtype=np.int8)}))
    with pytest.raises(ValueError, match="float64"):
        encode(PackedModel({}, {"w": np.zeros(3)}))


def _refused(blob: bytes, *words: str) -> str:
    with pytest.raises(DataError) as caught:
        decode(blob, "m.bwn")
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".") and message.startswith("m.bwn ")
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("keep", [0, 5, 15, 16, 100, -33, -1])
def test_truncated_file_is_refused(blob, keep):
    _refused(blob[:keep], "truncated")


def test_trailing_bytes_are_refused(blob):
    _refused(blob + b"\0", "unexpected bytes")


@pytest.mark.parametrize("where", ["header", "bits", "floats", "checksum"])
def test_flipped_byte_is_refused(blob, where):
    header, data_start = _header(blob)
    first_float = next(t for t in header["tensors"] if t["dtype"] == "float32")
    position = {"header": blob.index(b"blocks.0.conv1"), "bits": data_start + 3,
                "floats": data_start + first_float["offset"] + 1, "checksum": len(blob) - 5}
    damaged = bytearray(blob)
    damaged[position[where]] ^= 0x04
    _refused(bytes(damaged), "corrupted", "checksum")


def test_wrong_version_is_refused_even_with_a_valid_checksum(blob):
    newer = _rechecksummed(blob[:8] + struct.pack("<I", 2) + blob[12:-32])
    _refused(newer, "version 2", "version 1")


def test_other_files_are_refused(tmp_path):
    _refused(b"PK\x03\x04" + b"\0" * 100, "not a binwrn packed model")
    _refused(pickle.dumps({"state_dict": {}}), "not a binwrn packed model")
    with pytest.raises(DataError, match="Cannot read"):
        read_packed(tmp_path / "missing.bwn")


def test_malformed_header_with_valid_checksum_is_refused(blob):
    header, data_start = _header(blob)
    header["tensors"][0]["nbytes"] += 1
    text = json.dumps(header).encode()
    prefix = MAGIC + struct.pack("<II", 1, len(text)) + text
    padding = b"\0" * (-(-len(prefix) // 64) * 64 - len(prefix))
    _refused(_rechecksummed(prefix + padding + blob[data_start:-32]), "malformed")


def test_reading_never_unpickles():
    """No pickle, no np.load with pickles, no torch.load: a file cannot run code."""
    for module in ("format.py", "graph.py", "numpy_runtime.py"):
        source = (EXPORT_DIR / module).read_text()
        for forbidden in ("import pickle", "torch.load", "allow_pickle=True", "eval(", "exec("):
            assert forbidden not in source, (module, forbidden)
