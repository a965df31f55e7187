"""Model size in the style of Larq's summary: weights per layer, bits, 1-bit vs fp32 bytes.

Paper-spec 1.7: each binary weight is one bit on disk; alpha is recomputed from the shape, so
it costs nothing. BN moments (and any affine parameters) are the float side-car. A 1-bit layer
that paper 3's layer-by-layer schedule had not binarized yet still holds fp32 weights: it
counts as 32 bits, marked pending.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from binwrn.models.binary import BINARY_LAYERS


@dataclass(frozen=True)
class LayerSize:
    name: str
    shape: tuple[int, ...]
    weights: int
    bits: int
    pending: bool = False  # a 1-bit layer the iterative schedule had not binarized: fp32

    @property
    def packed_bytes(self) -> int:
        return math.ceil(self.weights * self.bits / 8)

    @property
    def fp32_bytes(self) -> int:
        return self.weights * 4


@dataclass(frozen=True)
class SizeSummary:
    layers: list[LayerSize]
    sidecar_floats: int = 0

    @property
    def conv_weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def binary_weights(self) -> int:
        return sum(layer.weights for layer in self.layers if layer.bits == 1)

    @property
    def pending_layers(self) -> list[LayerSize]:
        return [layer for layer in self.layers if layer.pending]

    @property
    def packed_bytes(self) -> int:
        """Binary weights packed together (one bit each) plus any fp32 conv weights."""
        fp32 = sum(layer.fp32_bytes for layer in self.layers if layer.bits != 1)
        return math.ceil(self.binary_weights / 8) + fp32

    @property
    def fp32_bytes(self) -> int:
        return self.conv_weights * 4

    @property
    def sidecar_bytes(self) -> int:
        return self.sidecar_floats * 4

    @property
    def compression(self) -> float:
        return self.fp32_bytes / self.packed_bytes

    def metrics(self) -> dict[str, float]:
        return {
            "model/conv_weights": self.conv_weights,
            "model/binary_weights": self.binary_weights,
            "model/packed_bytes": self.packed_bytes,
            "model/fp32_bytes": self.fp32_bytes,
            "model/sidecar_bytes": self.sidecar_bytes,
            "model/compression": self.compression,
        }

    def tags(self) -> dict[str, str]:
        """The sizes as MLflow tags: run constants, kept out of the metric charts."""
        return {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in self.metrics().items()}

    def as_dict(self) -> dict:
        return {
            "layers": [
                {"name": x.name, "shape": list(x.shape), "weights": x.weights, "bits": x.bits,
                 "packed_bytes": x.packed_bytes, "fp32_bytes": x.fp32_bytes,
                 **({"pending": True} if x.pending else {})}
                for x in self.layers
            ],
            "totals": self.metrics(),
        }

    def as_markdown(self) -> str:
        lines = ["| layer | shape | weights | bits | packed bytes | fp32 bytes |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {x.name} | {'x'.join(map(str, x.shape))} | {x.weights:,} | {x.bits} | "
                  f"{x.packed_bytes:,} | {x.fp32_bytes:,} |" for x in self.layers]
        lines += [
            f"| **total** | | {self.conv_weights:,} | | {self.packed_bytes:,} | "
            f"{self.fp32_bytes:,} |",
            "",
            f"Binary weights packed together: {self.packed_bytes:,} bytes vs {self.fp32_bytes:,} "
            f"fp32 (x{self.compression:.1f}); BN float side-car: {self.sidecar_floats:,} floats "
            f"({self.sidecar_bytes:,} bytes).",
        ]
        if self.pending_layers:
            lines += ["", self.pending_note()]
        return "\n".join(lines) + "\n"

    def pending_note(self) -> str:
        pending = self.pending_layers
        return (f"Partly binary: {len(pending)} of the 1-bit layers "
                f"({', '.join(x.name for x in pending)}) had not been binarized when training "
                f"stopped (iterative.order), so their {sum(x.weights for x in pending):,} "
                "weights are counted, and stored, as fp32.")


def size_summary(model: nn.Module) -> SizeSummary:
    """Count the weights of the conv and linear layers by bit width as the model stands
    (`conv_weights` keeps its name from paper 1's all-conv nets), and the floats BN layers
    need at inference."""
    layers = [
        LayerSize(name, tuple(m.weight.shape), m.weight.numel(), 1 if m.is_binary else 32,
                  pending=m.bits == 1 and not m.is_binary)
        for name, m in model.named_modules()
        if isinstance(m, BINARY_LAYERS)
    ]
    sidecar = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            sidecar += 2 * m.num_features * (2 if m.affine else 1)
    return SizeSummary(layers, sidecar)
