"""What a `.bwn` header must satisfy beyond its checksum (NumPy and the standard library only).

A checksum proves the bytes are the ones written, not that a writer wrote a consistent
file: a file made by hand (or by a broken writer) can carry a valid SHA-256 over a header
whose tensor records are not lists of sizes, whose convs have stride 0, whose layers do not
chain, or whose `model` block (what the PyTorch runtime builds) describes another net than
its `layers` (what the NumPy and ONNX runtimes run). Each such file is refused here with one
sentence naming it, before any runtime allocates anything for it:

- `check_tensor_records`: every tensor record is a dict with a unique name, a known dtype,
  a shape of whole numbers >= 0, and an offset and size inside the data region (so every
  array read is at most the file's size: eight weights per byte for `sign_bits`);
- `check_packed`: the topology is known, the `model` block's values are of the right kinds,
  the layers are exactly the ones that `model` builds (names, kinds, channels, kernel,
  stride, padding, BN affine), and every tensor a layer names is there with the dtype and
  shape the layer needs; the `data` and `source` blocks that binwrn-eval takes its
  defaults from hold a data set name, a test limit and an accuracy. The expected layers
  are derived from `model` only after its block count and width are checked against the
  header's own layers, so a header asking for 10**11 blocks is refused without building
  anything.

`expected_layers` mirrors the constructors of `binwrn.models.WideResNet` and `WideResNet18`
(`tests/test_format_checks.py` checks it against them for every topology).
"""

from __future__ import annotations

import math
import re

import numpy as np

from binwrn.errors import DataError

SIGN_BITS, FLOAT32 = "sign_bits", "float32"
TOPOLOGY = "mcdonnell-wrn-preact"
SHIFTED_RELU_TOPOLOGY = "mcdonnell2019-wrn-shifted-relu"
IMAGENET_TOPOLOGY = "mcdonnell-resnet18-wide-preact"
TOPOLOGIES = (TOPOLOGY, SHIFTED_RELU_TOPOLOGY, IMAGENET_TOPOLOGY)  # graph.py's, in that order
# The constructors' defaults, for keys a header's `model` leaves out.
WRN_DEFAULTS = {"depth": 20, "width": 10, "num_classes": 10, "in_channels": 3, "bits": 1,
                "first_last_fp32": False, "scale": "he", "input_relu": True,
                "bn_affine": False, "norm": "batchnorm", "temperature": None}
WRN18_DEFAULTS = {"depth": 18, "width": 2.5, "num_classes": 1000, "in_channels": 3, "bits": 1,
                  "first_last_fp32": False, "scale": "he", "input_relu": True,
                  "bn_affine": True, "stem_stride": 2, "stem_pool": True}
GAIN = 2.0  # he_scale's default; a model block may name another as init_gain
BN_EPS = 1e-5  # nn.BatchNorm2d's, kept by every BN of the models; rebuild_wrn never reads eps
WRN18_BLOCKS_PER_STAGE = {18: (2, 2, 2, 2)}
MAX_DIM = 2**31  # per axis; NumPy refuses a shape such as [0, 10**30] with an exception
_FIX = "export it again with binwrn-export"
_BLOCK = re.compile(r"blocks\.(\d{1,9})\.")
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class _Bad(Exception):
    """A problem found; `check_*` turn it into the file's one sentence."""

    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(problem)
        self.kind, self.problem = kind, problem


def _malformed(problem: str):
    raise _Bad("malformed", problem)


def _inconsistent(problem: str):
    raise _Bad("inconsistent", problem)


def _sentence(name: str, bad: _Bad) -> DataError:
    return DataError(f"{name} is {bad.kind} ({bad.problem}): {_FIX}.")


def _show(value) -> str:
    """repr, cut short: a header value can be megabytes long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(name: str) -> str:
    """A name from the header as is where it is short and printable, else its cut repr."""
    return name if name.isprintable() and len(name) <= 60 else _show(name)


def _is_int(value) -> bool:
    return type(value) is int


def _whole(value, what: str, least: int = 0) -> int:
    if not _is_int(value) or value < least:
        _malformed(f"{what} is {_show(value)}, not a whole number >= {least}")
    return value


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        _malformed(f"{what} is {_show(value)}, not a positive number")
    return value


def _flag(value, what: str) -> bool:
    if not isinstance(value, bool):
        _malformed(f"{what} is {_show(value)}, not true or false")
    return value


# ------------------------------------------------------------------ tensor records


def _nbytes(dtype: str, shape: list[int]) -> int:
    count = math.prod(shape)
    return -(-count // 8) if dtype == SIGN_BITS else 4 * count


def _check_record(record, data_bytes: int, seen: set[str]) -> None:
    if not isinstance(record, dict):
        _malformed("a tensor record is not an object")
    tname = record.get("name")
    if not isinstance(tname, str) or tname in seen:
        _malformed(f"tensor name {_show(tname)} is not a string, or not unique")
    seen.add(tname)
    if record.get("dtype") not in (SIGN_BITS, FLOAT32):
        _malformed(f"tensor {_plain(tname)} has dtype {_show(record.get('dtype'))}, neither "
                   f"{SIGN_BITS} nor {FLOAT32}")
    shape = record.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 \
            or not all(_is_int(s) and 0 <= s < MAX_DIM for s in shape):
        _malformed(f"tensor {_plain(tname)} has shape {_show(shape)}, not a list of sizes")
    offset, nbytes = record.get("offset"), record.get("nbytes")
    _whole(offset, f"tensor {_plain(tname)}'s offset")
    if not _is_int(nbytes) or nbytes != _nbytes(record["dtype"], shape):
        _malformed(f"tensor {_plain(tname)} has nbytes {_show(nbytes)}, but its dtype and "
                   f"shape make {_nbytes(record['dtype'], shape)}")
    if offset + nbytes > data_bytes:
        _malformed(f"tensor {_plain(tname)} ends at byte {offset + nbytes:,} of a data region of "
                   f"{data_bytes:,}")


def check_tensor_records(header: dict, name: str) -> None:
    """The `tensors` list of a header whose checksum matched: all of it readable within the
    data region. DataError with one sentence otherwise."""
    records, data_bytes = header.get("tensors"), header.get("data_bytes")
    try:
        if not isinstance(records, list) or not _is_int(data_bytes) or data_bytes < 0:
            _malformed("its header has no tensor list")
        seen: set[str] = set()
        for record in records:
            _check_record(record, data_bytes, seen)
    except _Bad as bad:
        raise _sentence(name, bad) from None


# ------------------------------------------------------------------ model block and layers


def _wrn_blocks_per_stage(depth) -> int:
    _whole(depth, "model.depth", 1)
    for offset in (2, 4):  # 6n+2, or Zagoruyko's 6n+4 naming of the same net
        if depth >= 6 + offset and (depth - offset) % 6 == 0:
            return (depth - offset) // 6
    _inconsistent(f"model.depth={depth} is not a Wide ResNet depth")


def _model(topology: str, model: dict) -> dict:
    """The header's `model` over the constructor's defaults, each value of the right kind."""
    m = {**(WRN18_DEFAULTS if topology == IMAGENET_TOPOLOGY else WRN_DEFAULTS),
         "init_gain": GAIN, **model}
    _whole(m["num_classes"], "model.num_classes", 1)
    _whole(m["in_channels"], "model.in_channels", 1)
    if m["bits"] not in (1, 32) or isinstance(m["bits"], bool):
        _malformed(f"model.bits is {_show(m['bits'])}, not 1 or 32")
    for key in ("first_last_fp32", "input_relu", "bn_affine"):
        _flag(m[key], f"model.{key}")
    if m["scale"] != "he":
        _malformed(f"model.scale is {_show(m['scale'])}; version 1 packs only he")
    _number(m["init_gain"], "model.init_gain")
    if topology == IMAGENET_TOPOLOGY:
        if not _is_int(m["depth"]) or m["depth"] not in WRN18_BLOCKS_PER_STAGE:
            _malformed(f"model.depth is {_show(m['depth'])}; the 18-2.5 topology has depth 18")
        _number(m["width"], "model.width")
        if m["stem_stride"] not in (1, 2) or isinstance(m["stem_stride"], bool):
            _malformed(f"model.stem_stride is {_show(m['stem_stride'])}, not 1 or 2")
        _flag(m["stem_pool"], "model.stem_pool")
        return m
    _whole(m["width"], "model.width", 1)
    shifted = topology == SHIFTED_RELU_TOPOLOGY
    if m["norm"] != ("shifted_relu" if shifted else "batchnorm"):
        _inconsistent(f"model.norm is {_show(m['norm'])} but the topology is {topology}")
    if shifted:
        _number(m["temperature"], "model.temperature")
    elif m["temperature"] is not None:
        _inconsistent("model.temperature is set, but the topology has batch norm")
    return m


def _first_width(topology: str, m: dict) -> int:
    if topology != IMAGENET_TOPOLOGY:
        return 16 * m["width"]
    first = 64 * m["width"]
    if first != int(first):
        _malformed(f"model.width={m['width']} gives {first} channels, not a whole number")
    return int(first)


def _stages(topology: str, m: dict) -> tuple[int, ...]:
    """Blocks per stage, checked against the blocks the header has before any is built."""
    if topology == IMAGENET_TOPOLOGY:
        return WRN18_BLOCKS_PER_STAGE[m["depth"]]
    return (_wrn_blocks_per_stage(m["depth"]),) * 3


def _conv(name, c_in, c_out, k, stride) -> dict:
    return {"name": name, "type": "conv2d", "in_channels": c_in, "out_channels": c_out,
            "kernel_size": k, "stride": stride, "padding": k // 2}


def _bn(name, channels, affine) -> dict:
    return {"name": name, "type": "batchnorm", "channels": channels, "affine": affine}


def expected_layers(topology: str, m: dict) -> list[dict]:
    """The conv and BN layers, in forward order, that binwrn's model of `topology` with the
    (checked, defaults filled) arguments `m` has; structural fields only."""
    batchnorm, affine = topology != SHIFTED_RELU_TOPOLOGY, m["bn_affine"]
    first = _first_width(topology, m)
    stem_k, stem_stride = (7, m["stem_stride"]) if topology == IMAGENET_TOPOLOGY else (3, 1)
    layers = [_bn("input_bn", m["in_channels"], True),
              _conv("conv_in", m["in_channels"], first, stem_k, stem_stride)]
    c_in, i = first, 0
    for stage, n in enumerate(_stages(topology, m)):
        c_out = first * 2**stage
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            if batchnorm:
                layers.append(_bn(f"blocks.{i}.bn1", c_in, affine))
            layers.append(_conv(f"blocks.{i}.conv1", c_in, c_out, 3, stride))
            if batchnorm:
                layers.append(_bn(f"blocks.{i}.bn2", c_out, affine))
            layers.append(_conv(f"blocks.{i}.conv2", c_out, c_out, 3, 1))
            c_in, i = c_out, i + 1
    if batchnorm:
        layers.append(_bn("bn_head", c_in, affine))
    layers.append(_conv("conv_out", c_in, m["num_classes"], 1, 1))
    if batchnorm:
        # the BN on the logits learns scale and offset only with model.final_bn_affine
        layers.append(_bn("bn_out", m["num_classes"], m.get("final_bn_affine") is True))
    return layers


def _header_layers(header: dict) -> dict[str, dict]:
    layers = header.get("layers")
    if not isinstance(layers, list) or not layers:
        _malformed("its header has no layer list")
    found: dict[str, dict] = {}
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str) \
                or layer.get("type") not in ("conv2d", "batchnorm"):
            _malformed("a layer record has no name, or a type other than conv2d and batchnorm")
        if layer["name"] in found:
            _malformed(f"layer {_plain(layer['name'])} is listed twice")
        found[layer["name"]] = layer
    return found


def _check_block_count(topology: str, m: dict, layers: dict[str, dict]) -> None:
    blocks = {int(match.group(1)) for n in layers if (match := _BLOCK.match(n))}
    if topology != IMAGENET_TOPOLOGY:
        _whole(m["depth"], "model.depth", 1)
    wanted = sum(_stages(topology, m))
    if len(blocks) != wanted:
        _inconsistent(f"model.depth={m['depth']} has {wanted} residual blocks, its layers "
                      f"{len(blocks)}")
    first = _first_width(topology, m)
    stem = layers.get("conv_in", {}).get("out_channels")
    if stem != first:
        _inconsistent(f"model.width={m['width']} makes conv_in {first} channels wide, its "
                      f"layers {_show(stem)}")


def _tensor(tensors: dict[str, np.ndarray], layer: dict, key: str, dtype, shape: list[int]):
    tname = layer.get(key)
    if not isinstance(tname, str) or tname not in tensors:
        _inconsistent(f"layer {layer['name']}'s {key} names tensor {_show(tname)}, which the "
                      "file does not hold")
    array = tensors[tname]
    if array.dtype != dtype or list(array.shape) != shape:
        def kind(d):
            return SIGN_BITS if d == np.int8 else FLOAT32

        _inconsistent(f"tensor {_plain(tname)} is {kind(array.dtype)} {list(array.shape)}; layer "
                      f"{layer['name']} needs {kind(dtype)} {shape}")


def _check_layer(found: dict, expected: dict, tensors: dict[str, np.ndarray], m: dict) -> None:
    name = expected["name"]
    if found["type"] != expected["type"]:
        _inconsistent(f"layer {name} is a {found['type']}, but the model has a "
                      f"{expected['type']} there")
    if expected["type"] == "batchnorm":
        c = _whole(found.get("channels"), f"layer {name}'s channels", 1)
        if c != expected["channels"]:
            _inconsistent(f"layer {name} has {c} channels; the model block makes it "
                          f"{expected['channels']}")
        if _number(found.get("eps"), f"layer {name}'s eps") != BN_EPS:
            _inconsistent(f"layer {name} has eps {found['eps']}; the model's BN has {BN_EPS}")
        for key in ("mean", "var"):
            _tensor(tensors, found, key, np.float32, [c])
        affine = [found.get(k) is not None for k in ("weight", "bias")]
        if affine != [expected["affine"]] * 2:
            _inconsistent(f"layer {name} has weight {_show(found.get('weight'))} and bias "
                          f"{_show(found.get('bias'))}, but the model block's BN has "
                          f"{'' if expected['affine'] else 'no '}affine parameters")
        for key in ("weight", "bias"):
            if found.get(key) is not None:
                _tensor(tensors, found, key, np.float32, [c])
        return
    for key in ("in_channels", "out_channels", "kernel_size", "stride", "padding"):
        value = _whole(found.get(key), f"layer {name}'s {key}", 0 if key == "padding" else 1)
        if value != expected[key]:
            _inconsistent(f"layer {name} has {key} {value}; the model block makes it "
                          f"{expected[key]}")
    bits = found.get("bits")
    if bits not in (1, 32) or isinstance(bits, bool):
        _malformed(f"layer {name} has bits {_show(bits)}, not 1 or 32")
    edge = name in ("conv_in", "conv_out") and m["first_last_fp32"]
    if bits == 1 and (m["bits"] == 32 or edge):
        _inconsistent(f"layer {name} is 1-bit, but the model block makes it fp32")
    if bits == 1:
        k, c_in = expected["kernel_size"], expected["in_channels"]
        alpha = math.sqrt(m["init_gain"] / (k * k * c_in))  # models.binary.he_scale
        if _number(found.get("alpha"), f"layer {name}'s alpha") != alpha:
            _inconsistent(f"layer {name} has alpha {found['alpha']}; its shape makes it "
                          f"{alpha} (sqrt({m['init_gain']:g} / (k * k * C_in)))")
    shape = [expected[k] for k in ("out_channels", "in_channels", "kernel_size", "kernel_size")]
    _tensor(tensors, found, "weight", np.int8 if bits == 1 else np.float32, shape)


def _check_side_blocks(header: dict) -> None:
    """`data` and `source` do not change inference, but binwrn-eval builds its defaults and
    its comparison from them."""
    data, source = header.get("data", {}), header.get("source", {})
    if not isinstance(data, dict) or not isinstance(source, dict):
        _malformed("its data or source block is not an object")
    dataset, limit, acc = data.get("dataset"), data.get("test_limit"), source.get("test_acc")
    if dataset is not None and not (isinstance(dataset, str) and _NAME.fullmatch(dataset)):
        _malformed(f"data.dataset is {_show(dataset)}, not a data set name")
    if limit is not None and (not _is_int(limit) or limit < 0):
        _malformed(f"data.test_limit is {_show(limit)}, not a whole number >= 0")
    if acc is not None and (isinstance(acc, bool) or not isinstance(acc, int | float)
                            or not 0 <= acc <= 1):
        _malformed(f"source.test_acc is {_show(acc)}, not an accuracy from 0 to 1")


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_packed(header: dict, tensors: dict[str, np.ndarray], name: str) -> None:
    """Refuse, in one sentence naming `name`, a header whose model block, layers and tensors
    do not describe one runnable net of a known topology."""
    try:
        topology = header.get("topology")
        if topology not in TOPOLOGIES:
            raise DataError(f"{name} has topology {_show(topology)}, none of "
                            f"{', '.join(map(repr, TOPOLOGIES))}: read it with the binwrn "
                            "version that wrote it.")
        if not isinstance(header.get("model"), dict):
            _malformed("its header has no model block")
        if "num_classes" not in header["model"]:
            _malformed("its model block has no num_classes")
        _check_side_blocks(header)
        layers = _header_layers(header)
        m = _model(topology, header["model"])
        _check_block_count(topology, m, layers)
        expected = expected_layers(topology, m)
        missing = [e["name"] for e in expected if e["name"] not in layers]
        if missing:
            _inconsistent(f"its layers lack {_few(missing)}, which its model block builds")
        extra = sorted(_plain(n) for n in set(layers) - {e["name"] for e in expected})
        if extra:
            _inconsistent(f"its layers have {_few(extra)}, which its model block does not "
                          "build")
        for layer in expected:
            _check_layer(layers[layer["name"]], layer, tensors, m)
    except _Bad as bad:
        raise _sentence(name, bad) from None
