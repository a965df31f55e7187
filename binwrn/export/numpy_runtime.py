"""Reference inference on a `.bwn` file with NumPy alone (no torch), in float32.

It exists to prove the packed format is self-contained: everything needed for the logits
is in the file and docs/packed-format.md. It is written for clarity, not speed (a conv is
k*k matrix products over shifted views of the input).

    python -m binwrn.export.numpy_runtime model.bwn images.npy   # prints predicted classes
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from binwrn.export.format import PackedModel, read_packed
from binwrn.export.graph import Op, bn_arrays, conv_weight, wrn_ops


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation without bias, NCHW input, OIHW weight (PyTorch's conv2d)."""
    n, _, h, w = x.shape
    _, _, k, _ = weight.shape
    h_out, w_out = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, h_out, w_out, weight.shape[0]), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            view = xp[:, :, i:i + stride * h_out:stride, j:j + stride * w_out:stride]
            out += np.tensordot(view, weight[:, :, i, j], axes=([1], [1]))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def batchnorm(x: np.ndarray, mean, var, gamma, beta, eps: float) -> np.ndarray:
    """Inference BN with stored moments: (x - mean) / sqrt(var + eps) * gamma + beta."""
    scale = gamma / np.sqrt(var + np.float32(eps))
    return x * scale[:, None, None] + (beta - mean * scale)[:, None, None]


def _windows_3x3_stride2(xp: np.ndarray, h_out: int, w_out: int):
    """The nine strided views of a 3x3, stride-2 pool over `xp` (already padded by 1)."""
    for i in range(3):
        for j in range(3):
            yield xp[..., i:i + 2 * h_out:2, j:j + 2 * w_out:2]


def _pool_output_size(x: np.ndarray) -> tuple[int, int]:
    return (x.shape[-2] - 1) // 2 + 1, (x.shape[-1] - 1) // 2 + 1


def max_pool(x: np.ndarray) -> np.ndarray:
    """3x3 max pool, stride 2, pad 1; the padding never wins (the 18-2.5 stem's pool)."""
    h_out, w_out = _pool_output_size(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return np.maximum.reduce(list(_windows_3x3_stride2(xp, h_out, w_out)))


def downsample(x: np.ndarray, extra_channels: int) -> np.ndarray:
    """3x3 average pool, stride 2, pad 1, averaging only the pixels inside the image, then
    `extra_channels` zero channels (paper-spec 1.2.2, count_include_pad=False)."""
    n, c, h, w = x.shape
    h_out, w_out = _pool_output_size(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    inside = np.pad(np.ones((h, w), dtype=np.float32), 1)
    total = sum(_windows_3x3_stride2(xp, h_out, w_out))
    count = sum(_windows_3x3_stride2(inside, h_out, w_out))
    pooled = total / count
    return np.concatenate([pooled, np.zeros((n, extra_channels, h_out, w_out), np.float32)], 1)


class NumpyWRN:
    """Logits of a packed WRN (any topology of graph.py) for float32 NCHW images with raw
    0-255 pixels."""

    def __init__(self, packed: PackedModel) -> None:
        self.ops = wrn_ops(packed.header)
        self.weights = {op.layer["name"]: conv_weight(packed, op.layer)
                        for op in self.ops if op.kind == "conv2d"}
        self.bns = {op.layer["name"]: bn_arrays(packed, op.layer)
                    for op in self.ops if op.kind == "batchnorm"}

    def _apply(self, op: Op, *args: np.ndarray) -> np.ndarray:
        match op.kind:
            case "batchnorm":
                return batchnorm(args[0], *self.bns[op.layer["name"]], op.layer["eps"])
            case "relu":
                return np.maximum(args[0], np.float32(0))
            case "shifted_relu":
                return np.maximum(args[0], np.float32(-1))
            case "divide":
                return args[0] / np.float32(op.divisor)
            case "conv2d":
                return conv2d(args[0], self.weights[op.layer["name"]], op.layer["stride"],
                              op.layer["padding"])
            case "max_pool":
                return max_pool(args[0])
            case "downsample":
                return downsample(args[0], op.extra_channels)
            case "add":
                return args[0] + args[1]
            case "global_avg_pool":
                return args[0].mean(axis=(2, 3), dtype=np.float32)
        raise ValueError(f"unknown operation {op.kind}")

    def logits(self, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        outputs = []
        for start in range(0, len(images), batch_size):
            values = {"images": images[start:start + batch_size]}
            for op in self.ops:
                values[op.output] = self._apply(op, *(values[i] for i in op.inputs))
            outputs.append(values["logits"])
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def load(path: str | Path) -> NumpyWRN:
    return NumpyWRN(read_packed(path))


if __name__ == "__main__":  # pragma: no cover - a demonstration for other-language readers
    model, batch = load(sys.argv[1]), np.load(sys.argv[2], allow_pickle=False)
    print(" ".join(map(str, model.logits(batch).argmax(axis=1))))
