"""A packed WRN as a QONNX graph: the format Brevitas writes and FINN and hls4ml read.

Every 1-bit convolution weight enters its `Conv` through `BipolarQuant(signs, alpha)`: the
initializer holds the signs +1/-1 (annotated with qonnx's `BIPOLAR` datatype) and the scale is
the layer's constant alpha (paper 1 Eq. 1, one float per tensor; a bipolar quantizer has no
zero point). Full-precision convs (`bits: 32`: a partly binary net, or `first_last_fp32`) keep
their plain float weights; BN, ReLU or the shifted ReLU, pooling, the shortcut's zero
channels and the classifier are the standard ONNX operators of `onnx_export`.

The graph is checked with qonnx itself before it is written (`check_qonnx`): onnx's checker,
qonnx's cleanup, shape and datatype inference, every tensor's shape known, a bipolar datatype
for every binary weight, and its executor's logits on real test images. qonnx (and onnxscript,
which it imports) load only here, so serving never needs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from binwrn.errors import ConfigError, DataError
from binwrn.export.format import PackedModel
from binwrn.export.onnx_export import _Graph, build_graph

QONNX_DOMAIN = "qonnx.custom_op.general"  # where qonnx and FINN look BipolarQuant up
QONNX_OPSET = 1
HEADER_PROP = "binwrn.header"  # metadata: the .bwn header's topology, model, data, source
HEADER_KEYS = ("topology", "model", "data", "source")


class _QonnxGraph(_Graph):
    def __init__(self, packed: PackedModel) -> None:
        super().__init__(packed)
        self.bipolar: list[str] = []  # the sign tensors, for their datatype annotation

    def conv_weight(self, layer: dict) -> str:
        if layer["bits"] != 1:
            return super().conv_weight(layer)
        name = layer["weight"]
        signs = self.constant(name, self.packed.tensors[name].astype(np.float32))
        scale = self.constant(f"{layer['name']}.alpha", np.array(layer["alpha"], np.float32))
        self.bipolar.append(signs)
        quantized = f"{layer['name']}.weight_q"
        self.node("BipolarQuant", [signs, scale], quantized, f"{layer['name']}.quant",
                  domain=QONNX_DOMAIN)
        return quantized


def to_qonnx(packed: PackedModel, image_shape: tuple[int, int]) -> onnx.ModelProto:
    """The QONNX inference graph for one (H, W) image size, batch 1 (FINN's convention;
    qonnx's `ChangeBatchSize` or `cleanup --override-inpsize` changes it): input `images`
    float32 raw 0-255 pixels NCHW, output `logits`."""
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    g = _QonnxGraph(packed)
    model = build_graph(g, 1, tuple(image_shape), {QONNX_DOMAIN: QONNX_OPSET})
    model.doc_string = (f"McDonnell's 1-bit Wide ResNet ({packed.header['topology']}) in "
                        "QONNX: 1-bit conv weights as BipolarQuant(+/-1, alpha); activations "
                        "full precision; input: raw 0-255 pixels, NCHW, no normalisation.")
    header = {k: packed.header[k] for k in HEADER_KEYS if k in packed.header}
    helper.set_model_props(model, {HEADER_PROP: json.dumps(header, sort_keys=True)})
    wrapper = ModelWrapper(model)
    for name in g.bipolar:
        wrapper.set_tensor_datatype(name, DataType["BIPOLAR"])
    wrapper = wrapper.transform(InferShapes()).transform(InferDataTypes())
    onnx.checker.check_model(wrapper.model)
    return wrapper.model


@dataclass
class QonnxCheck:
    binary_weights: int  # convs whose weight is BipolarQuant of a BIPOLAR tensor
    fp32_convs: int
    logits: np.ndarray  # qonnx's executor's, on the images given


def conv_weight_datatypes(wrapper) -> list[str | None]:
    """For every Conv in graph order: the qonnx datatype of the weight its BipolarQuant
    quantizes where the quantizer's integer datatype is the same (BIPOLAR for a well-formed
    graph), `"A/B"` where they differ, None for a plain float weight."""
    from qonnx.custom_op.registry import getCustomOp

    found = []
    for conv in wrapper.get_nodes_by_op_type("Conv"):
        quant = wrapper.find_producer(conv.input[1])
        if quant is None or quant.op_type != "BipolarQuant":
            found.append(None)
            continue
        weight = wrapper.get_tensor_datatype(quant.input[0]).name
        integer = getCustomOp(quant).get_integer_datatype(wrapper).name
        found.append(weight if weight == integer else f"{weight}/{integer}")
    return found


def cleaned(model: onnx.ModelProto):
    """qonnx's cleanup (quantizers kept), then shape and datatype inference, as a FINN or
    hls4ml flow starts: a `ModelWrapper`."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    wrapper = cleanup_model(ModelWrapper(model.SerializeToString()))
    return wrapper.transform(InferShapes()).transform(InferDataTypes())


EXECUTOR_NEEDS = (1, 32)  # onnxruntime that loads the IR 14 node models qonnx's executor makes


def check_executor_runtime(version: str | None = None) -> None:
    """qonnx's executor runs each node as a model of onnx's IR version (14 with onnx 1.23),
    which onnxruntime loads from 1.32; an older one (a GPU image's 1.30) gets one sentence."""
    import onnxruntime

    version = version or onnxruntime.__version__
    found = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if found < EXECUTOR_NEEDS:
        raise ConfigError(f"QONNX needs onnxruntime 1.32 or newer for qonnx's executor (this "
                          f"environment has {version}): upgrade onnxruntime, or leave out "
                          "--qonnx and --runtime qonnx.")


def qonnx_logits(wrapper, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """qonnx's executor (node by node; BipolarQuant in qonnx's own Python) on float32 NCHW
    images, `batch_size` at a time."""
    check_executor_runtime()
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    images = np.asarray(images, dtype=np.float32)
    source, sink = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    sized, out = {}, []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if len(batch) not in sized:
            sized[len(batch)] = wrapper.transform(ChangeBatchSize(len(batch))).transform(
                InferShapes())
        out.append(execute_onnx(sized[len(batch)], {source: batch})[sink])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def check_qonnx(model: onnx.ModelProto, packed: PackedModel, images: np.ndarray) -> QonnxCheck:
    """What qonnx makes of the graph: its cleanup and inference pass, every tensor has a
    shape, every 1-bit conv of `packed` gets a BIPOLAR weight (and every fp32 conv none), and
    its executor's logits on `images`. DataError, in one sentence, where any of it fails."""
    bits = [layer["bits"] for layer in packed.header["layers"] if layer["type"] == "conv2d"]
    wrapper = cleaned(model)
    if not wrapper.check_all_tensor_shapes_specified():
        raise DataError("qonnx's shape inference left tensors of the QONNX graph without a "
                        "shape, so nothing was written: please report this as a bug.")
    datatypes = conv_weight_datatypes(wrapper)
    if datatypes != ["BIPOLAR" if b == 1 else None for b in bits]:
        raise DataError(f"qonnx reports the conv weight datatypes {datatypes} for a net whose "
                        f"convs have {bits} bits, so nothing was written: please report this "
                        "as a bug.")
    binary = bits.count(1)
    return QonnxCheck(binary, len(bits) - binary, qonnx_logits(wrapper, images))


@dataclass
class QonnxFile:
    """A QONNX file binwrn-export wrote: its graph and what binwrn-eval reads of the `.bwn`
    header it came from (data set, test_limit, classes, the run's test accuracy)."""

    header: dict
    model: onnx.ModelProto


def read_qonnx(path: str | Path) -> QonnxFile:
    """The QONNX file at `path`; one sentence (DataError) for anything else."""
    name = Path(path)
    try:
        model = onnx.load(str(name))
        header = json.loads({p.key: p.value for p in model.metadata_props}[HEADER_PROP])
        header["model"]["num_classes"]  # noqa: B018 - present, or the file is not ours
    except FileNotFoundError:
        raise ConfigError(f"{name} does not exist: give a QONNX file written by "
                          "binwrn-export --qonnx.") from None
    except Exception:  # noqa: BLE001 - protobuf and JSON fail in many types
        raise DataError(f"{name} is not a QONNX file written by binwrn-export --qonnx (no "
                        f"{HEADER_PROP} metadata): export it with binwrn-export --qonnx.") \
            from None
    return QonnxFile(header, model)


def qonnx_version() -> str:
    from importlib.metadata import version

    return version("qonnx")
