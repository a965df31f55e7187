"""The inference wiring of McDonnell's WRN, read from a packed header (NumPy only).

The NumPy runtime and the ONNX exporter both walk this list, so the wiring that is not
PyTorch's lives in one place. It follows binwrn.models.wrn (paper-spec 1.2.2): input BN
[-> ReLU] -> conv_in; per block BN-ReLU-conv twice on the stream, the skip carrying the
un-normalised stream (3x3/2 average pool excluding padding + zero channels where the shape
changes); head BN-ReLU-conv_out, BN without affine, global average pool.
Paper 2's net (spec 2.2, its own topology name, so an older reader refuses it) has the
shifted ReLU max(x, -1) where paper 1 has BN-ReLU, and a head shifted ReLU -> conv_out ->
divide by the temperature -> global average pool.
Paper 1's ImageNet net 18-2.5 (binwrn.models.resnet18_wide, its own topology name) is the
paper-1 WRN with a 7x7 stem conv (its stride and padding are in the conv's record like any
conv's) and, where model.stem_pool, a 3x3/2 max pool after it; blocks, shortcuts and head are
the CIFAR net's, so only the max pool is a new operation.

Blocks are found from the layer names (`blocks.<i>.conv1`), so nothing here needs to know how
depth maps to blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from binwrn.errors import DataError
from binwrn.export.format import PackedModel

TOPOLOGY = "mcdonnell-wrn-preact"
SHIFTED_RELU_TOPOLOGY = "mcdonnell2019-wrn-shifted-relu"  # model.norm=shifted_relu
IMAGENET_TOPOLOGY = "mcdonnell-resnet18-wide-preact"  # model=resnet18_wide (18-2.5)
TOPOLOGIES = (TOPOLOGY, SHIFTED_RELU_TOPOLOGY, IMAGENET_TOPOLOGY)
_BLOCK = re.compile(r"blocks\.(\d+)\.conv1")


@dataclass(frozen=True)
class Op:
    """One step: kind is batchnorm, relu, shifted_relu (max(x, -1)), conv2d, max_pool (3x3,
    stride 2, padding 1), downsample, add, divide (by `divisor`) or global_avg_pool."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    layer: dict | None = None  # the header's record of a batchnorm or conv2d layer
    extra_channels: int = 0  # downsample: zero channels appended after pooling
    divisor: float = 1.0  # divide: the logits' temperature


class _Builder:
    def __init__(self, layers: dict[str, dict]) -> None:
        self.layers, self.ops, self.count = layers, [], 0

    def add(self, kind: str, *inputs: str, layer: str | None = None, extra: int = 0,
            divisor: float = 1.0) -> str:
        self.count += 1
        out = f"t{self.count}"
        if layer is not None and layer not in self.layers:
            raise DataError(f"The packed header has no layer {layer}: export the model again.")
        record = self.layers[layer] if layer is not None else None
        self.ops.append(Op(kind, inputs, out, record, extra, divisor))
        return out

    def bn_relu_conv(self, x: str, bn: str, conv: str) -> str:
        return self.add("conv2d", self.add("relu", self.add("batchnorm", x, layer=bn)),
                        layer=conv)

    def srelu_conv(self, x: str, conv: str) -> str:
        return self.add("conv2d", self.add("shifted_relu", x), layer=conv)


def known_topology(header: dict) -> str:
    """The header's topology, if this binwrn can run it; DataError otherwise."""
    topology = header.get("topology")
    if topology not in TOPOLOGIES:
        raise DataError(f"The packed model's topology {topology!r} is none of "
                        f"{', '.join(map(repr, TOPOLOGIES))}: read it with the binwrn version "
                        "that wrote it.")
    return topology


def wrn_ops(header: dict, input_name: str = "images", output_name: str = "logits") -> list[Op]:
    """The forward pass as operations on named values; the last one writes `output_name`."""
    topology = known_topology(header)
    srelu = topology == SHIFTED_RELU_TOPOLOGY
    layers = {layer["name"]: layer for layer in header["layers"]}
    blocks = sorted(int(m.group(1)) for n in layers if (m := _BLOCK.fullmatch(n)))
    g = _Builder(layers)
    x = g.add("batchnorm", input_name, layer="input_bn")
    if header["model"].get("input_relu", True):
        x = g.add("relu", x)
    x = g.add("conv2d", x, layer="conv_in")
    if topology == IMAGENET_TOPOLOGY and header["model"].get("stem_pool", True):
        x = g.add("max_pool", x)  # the model's default is ResNet-18's pool
    for i in blocks:
        if srelu:
            h = g.srelu_conv(g.srelu_conv(x, f"blocks.{i}.conv1"), f"blocks.{i}.conv2")
        else:
            h = g.bn_relu_conv(x, f"blocks.{i}.bn1", f"blocks.{i}.conv1")
            h = g.bn_relu_conv(h, f"blocks.{i}.bn2", f"blocks.{i}.conv2")
        conv1 = layers[f"blocks.{i}.conv1"]
        if conv1["stride"] != 1 or conv1["in_channels"] != conv1["out_channels"]:
            extra = conv1["out_channels"] - conv1["in_channels"]
            x = g.add("downsample", x, extra=extra)
        x = g.add("add", x, h)
    if srelu:
        x = g.add("divide", g.srelu_conv(x, "conv_out"),
                  divisor=float(header["model"]["temperature"]))
    else:
        x = g.add("batchnorm", g.bn_relu_conv(x, "bn_head", "conv_out"), layer="bn_out")
    g.add("global_avg_pool", x)
    last = g.ops[-1]
    g.ops[-1] = Op(last.kind, last.inputs, output_name, last.layer, last.extra_channels,
                   last.divisor)
    return g.ops


def conv_weight(packed: PackedModel, layer: dict) -> np.ndarray:
    """The weight a conv uses: (2b-1) * alpha for 1-bit layers (alpha rounded to float32,
    exactly what sign(W) * alpha gives in PyTorch), the stored floats for fp32 layers."""
    weight = packed.tensors[layer["weight"]]
    if layer["bits"] == 1:
        return weight.astype(np.float32) * np.float32(layer["alpha"])
    return weight


def bn_arrays(packed: PackedModel, layer: dict) -> tuple[np.ndarray, ...]:
    """(mean, var, gamma, beta) as float32; gamma 1 and beta 0 where BN has no affine."""
    mean, var = packed.tensors[layer["mean"]], packed.tensors[layer["var"]]
    ones, zeros = np.ones_like(mean), np.zeros_like(mean)
    gamma = packed.tensors[layer["weight"]] if layer.get("weight") else ones
    beta = packed.tensors[layer["bias"]] if layer.get("bias") else zeros
    return mean, var, gamma, beta
