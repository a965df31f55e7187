"""The served 1-bit model: an MLflow pyfunc over a `.bwn` file, run by ONNX Runtime.

Loading the model reads the `.bwn` (one bit per weight on disk), builds the ONNX graph of
`onnx_export` from it in memory (the bits become +/-alpha floats there, never on disk) and
opens one onnxruntime session; `predict` runs it. The NumPy runtime stays the readable
reference: `binwrn-export --register` checks the loaded model's logits against it.

This module is what `mlflow models serve` and `mlflow.pyfunc.load_model` import, in an
environment that may have no torch: it imports NumPy, MLflow's pyfunc base class and the
torch-free part of `binwrn.export` (format, graph, onnx_export with onnx and onnxruntime),
nothing else. The logged model carries those files in its `code/` folder
(`mlflow_model.served_code`), so binwrn need not be installed where it is served;
`served_model.py` is the model's code file.

Input contract (docs/packed-format.md sections 8 and 9): uint8 images, NHWC (N, H, W, C), raw
pixels 0-255 as read from an image file, no scaling, at the size the run was tested with
(32x32x3 for CIFAR). Output: float32 `logits` and softmax `probabilities`, both (N, classes).

MLflow's scoring server casts JSON numbers to the signature's dtype with `np.array(..., uint8)`,
which turns 0.5 into 0: a client that sends scaled floats would get confident answers for
black images. `load_context` therefore puts a check of the raw JSON in front of the server's
parser (for this model's signature only) that answers such requests, and requests of the wrong
shape, with HTTP 400 and one sentence.
"""

from __future__ import annotations

import sys

import numpy as np
from mlflow.pyfunc import PythonModel

from binwrn.export.format import read_packed
from binwrn.export.onnx_export import OnnxWRN, to_onnx

INPUT = "images"
KINDS = {"f": "floating-point numbers", "b": "booleans", "U": "strings", "S": "strings",
         "O": "mixed values"}


def contract(image_shape: tuple[int, int, int]) -> str:
    """What to send, for (H, W, C) with -1 where any size will do."""
    shape = ", ".join(str(n) if n > 0 else d for n, d in zip(image_shape, "HWC", strict=True))
    return f"send uint8 pixels 0-255 (raw, not scaled) in NHWC order, shape (N, {shape})"


def check_images(images: np.ndarray, image_shape: tuple[int, int, int]) -> str | None:
    """What is wrong with `images` as input for (H, W, C) images (-1: any size), in one
    sentence; None if nothing."""
    if images.dtype.kind not in "iu":
        found = KINDS.get(images.dtype.kind, f"{images.dtype} values")
        return f"The images are {found}, not uint8 pixels: {contract(image_shape)}."
    if images.ndim != 4 or any(n > 0 and n != m for n, m in zip(image_shape, images.shape[1:],
                                                                  strict=True)):
        return f"The images have shape {images.shape}: {contract(image_shape)}."
    if images.size and (images.min() < 0 or images.max() > 255):
        return (f"The pixels range from {images.min()} to {images.max()}, outside 0-255: "
                f"{contract(image_shape)}.")
    return None


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class PackedWRN(PythonModel):
    """A packed 1-bit WRN (artifact `bwn`) run by `OnnxWRN`; see the module docstring."""

    def load_context(self, context) -> None:
        packed = read_packed(context.artifacts["bwn"])
        self._net = OnnxWRN(to_onnx(packed))
        self._channels = int(packed.header["model"].get("in_channels", 3))
        if "mlflow.pyfunc.scoring_server" in sys.modules:  # being served
            _check_json_before_parsing()

    def predict(self, context, model_input: np.ndarray, params=None) -> dict[str, np.ndarray]:
        """MLflow has checked `model_input` against the signature; this checks again for
        callers without one (the net itself takes any height and width)."""
        images = np.asarray(model_input[INPUT] if isinstance(model_input, dict) else model_input)
        problem = check_images(images, (-1, -1, self._channels))
        if problem:
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(problem)
        logits = self._net.logits(images.transpose(0, 3, 1, 2).astype(np.float32))
        return {"logits": logits, "probabilities": softmax(logits)}


def _image_shape(schema) -> tuple[int, int, int] | None:
    """(H, W, C) if `schema` is this model's input signature (uint8 `images`, NHWC)."""
    specs = getattr(schema, "inputs", None) or []
    if len(specs) != 1 or getattr(specs[0], "name", None) != INPUT or \
            getattr(specs[0], "type", None) != np.dtype(np.uint8):
        return None
    shape = tuple(getattr(specs[0], "shape", ()))
    return shape[1:] if len(shape) == 4 else None


def _json_images(data: dict):
    values = data.get("inputs", data.get("instances")) if isinstance(data, dict) else None
    return values.get(INPUT) if isinstance(values, dict) else values


def _check_json_before_parsing() -> None:
    """Wrap the scoring server's JSON parser (once) so that a request for this model whose
    numbers are not whole 0-255 pixels, or whose shape is not the signature's (N, H, W, C),
    is refused with HTTP 400 before MLflow casts it to uint8."""
    from mlflow.pyfunc import scoring_server
    from mlflow.utils.proto_json_utils import MlflowInvalidInputException

    parse = scoring_server.infer_and_parse_data
    if getattr(parse, "binwrn_checked", False):
        return

    def parse_checked(data, schema=None):
        values, image_shape = _json_images(data), _image_shape(schema)
        if values is not None and image_shape is not None:
            try:
                images = np.asarray(values)
            except ValueError:  # ragged nesting
                images = None
            problem = (check_images(images, image_shape) if images is not None else
                       f"The images are not one rectangular array: {contract(image_shape)}.")
            if problem:
                raise MlflowInvalidInputException(problem)
        return parse(data, schema)

    parse_checked.binwrn_checked = True
    scoring_server.infer_and_parse_data = parse_checked
