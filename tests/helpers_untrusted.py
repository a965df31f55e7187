"""Untrusted files for the readers' tests: valid ones to start from, the tools to damage them
(and re-seal what has a checksum, so the damage reaches the parser), and the named bad cases
of issue 15 (docs/reliability.md, "Untrusted files").
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from helpers_data import write_mnist_idx
from helpers_export import trained_looking_wrn, trained_looking_wrn18

from binwrn.export.format import MAGIC, encode
from binwrn.export.pack import pack_wrn

# ----------------------------------------------------------------------------- .bwn


@functools.cache
def valid_bwn(kind: str = "wrn") -> bytes:
    """A real packed model: "wrn" (WRN-8-1, paper 1), "shifted" (paper 2's net, fp32 first
    and last convs) or "wrn18" (the 18-2.5 at width 0.125, affine BN)."""
    if kind == "wrn18":
        model, kwargs = trained_looking_wrn18(stem_stride=1, num_classes=4)
    elif kind == "shifted":
        model, kwargs = trained_looking_wrn(norm="shifted_relu", temperature=40.0,
                                            input_relu=False, first_last_fp32=True)
    else:
        model, kwargs = trained_looking_wrn()
    data = {"dataset": "digits", "num_classes": kwargs["num_classes"], "image_size": 32,
            "test_limit": 20}
    return encode(pack_wrn(model, kwargs, data, {"from": "test"}))[0]


def split_bwn(blob: bytes) -> tuple[dict, bytes]:
    """(header, data region) of a valid .bwn file."""
    _, _, length = struct.unpack_from("<8sII", blob)
    start = -(-(16 + length) // 64) * 64
    return json.loads(blob[16:16 + length]), blob[start:-32]


def seal_bwn(header_text: bytes, data: bytes) -> bytes:
    """A .bwn file around `header_text` and `data` with a valid checksum."""
    prefix = MAGIC + struct.pack("<II", 1, len(header_text)) + header_text
    body = prefix + b"\0" * (-len(prefix) % 64) + data
    return body + hashlib.sha256(body).digest()


def reseal(blob: bytes) -> bytes:
    """`blob` with its last 32 bytes replaced by the SHA-256 of the rest."""
    return blob[:-32] + hashlib.sha256(blob[:-32]).digest()


def _edited(edit, kind: str = "wrn") -> bytes:
    header, data = split_bwn(valid_bwn(kind))
    header = copy.deepcopy(header)
    edit(header)
    return seal_bwn(json.dumps(header).encode(), data)


def _layer(header: dict, name: str) -> dict:
    return next(layer for layer in header["layers"] if layer["name"] == name)


def _tensor(header: dict, name: str) -> dict:
    return next(t for t in header["tensors"] if t["name"] == name)


def _swap_shape(header: dict) -> None:  # 16x16 -> 32x8: same bytes, another conv
    _tensor(header, "blocks.0.conv1.weight")["shape"] = [32, 8, 3, 3]


def _drop_head(header: dict) -> None:
    header["layers"] = header["layers"][:-3]


# name -> (file, words the one sentence must hold). All have a valid checksum.
BAD_BWN = {
    "stride 0": (lambda: _edited(lambda h: _layer(h, "blocks.0.conv1").update(stride=0)),
                 "blocks.0.conv1's stride is 0"),
    "inconsistent shapes": (lambda: _edited(_swap_shape),
                            "tensor blocks.0.conv1.weight is sign_bits [32, 8, 3, 3]"),
    "channels that do not chain": (
        lambda: _edited(lambda h: _layer(h, "blocks.0.conv1").update(in_channels=7)),
        "blocks.0.conv1 has in_channels 7"),
    "model depth disagrees": (lambda: _edited(lambda h: h["model"].update(depth=14)),
                              "model.depth=14 has 6 residual blocks, its layers 3"),
    "model width disagrees": (lambda: _edited(lambda h: h["model"].update(width=4)),
                              "model.width=4 makes conv_in 64 channels wide"),
    "model of 3 x 10**11 blocks": (
        lambda: _edited(lambda h: h["model"].update(depth=6 * 10**11 + 2)),
        "model.depth=600000000002 has 300000000000 residual blocks, its layers 3"),
    "layers missing": (lambda: _edited(_drop_head), "lack bn_head, conv_out, bn_out"),
    "data block that is not a data set": (
        lambda: _edited(lambda h: h["data"].update(dataset="digits data.root=/")),
        "data.dataset is 'digits data.root=/'"),
    "tensor record not a list of sizes": (
        lambda: _edited(lambda h: _tensor(h, "conv_in.weight").update(shape="16,3,3,3")),
        "tensor conv_in.weight has shape '16,3,3,3'"),
}


# ----------------------------------------------------------------------------- MNIST IDX


def idx_header(*ints: int) -> bytes:
    return struct.pack(f">{len(ints)}i", *ints)


def mnist_folder(root: Path, gz: bool = False) -> Path:
    """A small valid MNIST folder (30 training, 20 test images), raw or gzipped files."""
    return write_mnist_idx(root, n_train=30, n_test=20, compressed=(gz,))["folder"]


def negative_dims_idx(folder: Path) -> None:
    """Train images whose header says (-30, -28, 28): the product, 23,520, is the file's own
    data size, so only the sign gives it away."""
    path = folder / "train-images-idx3-ubyte"
    blob = path.read_bytes()
    path.write_bytes(idx_header(0x803, -30, -28, 28) + blob[16:])


def huge_dims_gz(folder: Path) -> None:
    """A 30-byte-ish gzip archive whose header announces 2**31 - 1 images of 28x28."""
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x803, 2**31 - 1, 28, 28) + bytes(100)))


# ----------------------------------------------------------------------------- pickles


def reconstruct_pickle(shape: tuple[int, ...], code: bytes = b"b") -> bytes:
    """`numpy.core.multiarray._reconstruct(numpy.ndarray, shape, code)` and nothing else:
    the allowed globals asked for an array of prod(shape) bytes."""
    dims = b"".join(b"\x8a" + bytes([len(b)]) + b for b in
                    (n.to_bytes(max(1, (n.bit_length() + 8) // 8), "little") for n in shape))
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n(" + dims
            + b"tC" + bytes([len(code)]) + code + b"\x87R.")


TIB_PICKLE = reconstruct_pickle((2**40,))


def lying_bytes_pickle(length: int = 2**40) -> bytes:
    """A `BINBYTES8` whose length says 1 TiB, followed by three bytes."""
    return b"\x80\x04\x8e" + length.to_bytes(8, "little") + b"abc"


def batch_pickle(n: int = 4, python2: bool = False, seed: int = 0) -> bytes:
    """A valid CIFAR/ImageNet32-style batch: 'data' uint8 (n, 3072), 'labels' 1..10."""
    rng = np.random.default_rng(seed)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": rng.integers(1, 11, n).tolist()}
    if not python2:
        return pickle.dumps(batch, protocol=3).replace(b"numpy._core", b"numpy.core")
    import io

    from helpers_data import _Python2StylePickler

    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(batch)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
