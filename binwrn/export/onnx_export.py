"""A packed WRN as a standard ONNX graph, and its logits with onnxruntime (no torch).

The graph is written from the same operation list as the NumPy runtime (`graph.wrn_ops`),
with every 1-bit weight expanded to +alpha / -alpha in float32: standard runtimes have no
1-bit convolution, so the ONNX file is as large as an fp32 model; the `.bwn` file is the
compact one. The zero channels of the downsampling shortcut are a `Pad` on the channel axis,
so the batch size stays free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from binwrn.export.format import PackedModel, write_bytes
from binwrn.export.graph import Op, bn_arrays, conv_weight, wrn_ops

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17; onnxruntime reads it


class _Graph:
    def __init__(self, packed: PackedModel) -> None:
        self.packed, self.nodes, self.initializers = packed, [], []

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def emit(self, op: Op) -> None:
        inputs, layer = list(op.inputs), op.layer or {}
        if op.kind == "batchnorm":
            name = layer["name"]
            names = ("mean", "var", "scale", "bias")
            mean, var, gamma, beta = (self.constant(f"{name}.{n}", a) for n, a in
                                      zip(names, bn_arrays(self.packed, layer), strict=True))
            self.node("BatchNormalization", [*inputs, gamma, beta, mean, var], op.output,
                      name, epsilon=layer["eps"])
        elif op.kind == "conv2d":
            w = self.conv_weight(layer)
            pad, k, s = layer["padding"], layer["kernel_size"], layer["stride"]
            self.node("Conv", [*inputs, w], op.output, layer["name"], kernel_shape=[k, k],
                      strides=[s, s], pads=[pad] * 4)
        elif op.kind == "max_pool":  # the 18-2.5 stem's; ONNX pads MaxPool with -inf
            self.node("MaxPool", inputs, op.output, kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1])
        elif op.kind == "downsample":
            pooled = f"{op.output}_pooled"
            self.node("AveragePool", inputs, pooled, kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1], count_include_pad=0)
            pads = self.constant(f"{op.output}_pads",
                                 np.array([0, 0, 0, 0, 0, op.extra_channels, 0, 0], np.int64))
            self.node("Pad", [pooled, pads], op.output, mode="constant")
        elif op.kind in ("shifted_relu", "divide"):  # max(x, -1); logits / T
            operand = -1.0 if op.kind == "shifted_relu" else op.divisor
            value = self.constant(f"{op.output}_operand", np.array(operand, np.float32))
            self.node("Max" if op.kind == "shifted_relu" else "Div", [*inputs, value],
                      op.output)
        elif op.kind == "global_avg_pool":
            self.node("GlobalAveragePool", inputs, f"{op.output}_pooled")
            self.node("Flatten", [f"{op.output}_pooled"], op.output, axis=1)
        else:
            self.node({"relu": "Relu", "add": "Add"}[op.kind], inputs, op.output)

    def conv_weight(self, layer: dict) -> str:
        """The name of the weight a conv uses: here the floats, +/-alpha for 1-bit layers."""
        return self.constant(layer["weight"], conv_weight(self.packed, layer))

    def node(self, kind: str, inputs: list[str], output: str, name: str | None = None,
             domain: str | None = None, **attributes) -> None:
        self.nodes.append(helper.make_node(kind, inputs, [output], name=name or output,
                                           domain=domain, **attributes))


def build_graph(g: _Graph, batch: int | str = "batch", image_hw: tuple = ("height", "width"),
                opsets: dict[str, int] | None = None) -> onnx.ModelProto:
    """The model of `g`'s nodes for every operation of its packed net, with input `images`
    (batch, C, *image_hw) and output `logits` (batch, classes); `opsets` adds domains."""
    for op in wrn_ops(g.packed.header):
        g.emit(op)
    model_kwargs = g.packed.header["model"]
    images = helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [batch, model_kwargs.get("in_channels", 3), *image_hw])
    logits = helper.make_tensor_value_info(
        "logits", TensorProto.FLOAT, [batch, model_kwargs["num_classes"]])
    graph = helper.make_graph(g.nodes, "binwrn_wrn", [images], [logits], g.initializers)
    imports = [helper.make_opsetid(d, v) for d, v in {"": OPSET, **(opsets or {})}.items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=IR_VERSION,
                             producer_name="binwrn")


def to_onnx(packed: PackedModel) -> onnx.ModelProto:
    """The inference graph: input `images` (N, C, H, W) float32 raw 0-255 pixels, output
    `logits` (N, classes)."""
    model = build_graph(_Graph(packed))
    model.doc_string = (f"McDonnell's 1-bit Wide ResNet ({packed.header['topology']}); weights "
                        "expanded to +/-alpha; input: raw 0-255 pixels, NCHW, no "
                        "normalisation.")
    onnx.checker.check_model(model)
    return model


def save_onnx(model: onnx.ModelProto, path: str | Path) -> int:
    """Write the model; returns its size in bytes."""
    blob = model.SerializeToString()
    write_bytes(path, blob)
    return len(blob)


class OnnxWRN:
    """An onnxruntime session (CPU) of the graph, made once: `logits` of float32 NCHW images,
    `batch_size` at a time."""

    def __init__(self, model: onnx.ModelProto | bytes) -> None:
        import onnxruntime as ort

        blob = model if isinstance(model, bytes) else model.SerializeToString()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])

    def logits(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        out = [self.session.run(["logits"], {"images": images[i:i + batch_size]})[0]
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def onnx_logits(model: onnx.ModelProto | bytes, images: np.ndarray,
                batch_size: int = 500) -> np.ndarray:
    """Logits from onnxruntime on the CPU, for float32 NCHW images."""
    return OnnxWRN(model).logits(images, batch_size)
