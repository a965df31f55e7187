"""A trained PyTorch `WideResNet` or `WideResNet18` (paper 1's ImageNet 18-2.5) <->
`PackedModel` (paper-spec 1.7).

Packing keeps, per conv, the sign of each latent weight (b=1 for W >= 0: a latent weight of
exactly 0, which sign() maps to 0 in training, is stored as +1 and counted, and the export's
logit check decides whether that mattered); alpha goes in the header. Per BN layer it keeps
the running moments (the recomputed ones of paper 1 section 3.2.1) and any affine
parameters as float32. The rebuilt model uses alpha * (2b - 1), which is bit for bit the
weight the trained model's forward pass used. A conv that computed in fp32 (model.bits=32,
model.first_last_fp32, or a 1-bit layer paper 3's schedule had not binarized when training
stopped) is stored as float32 with `bits: 32`, so a partly binary net packs as it was trained.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from binwrn.errors import ConfigError, DataError
from binwrn.export.format import PackedModel
from binwrn.export.graph import (
    IMAGENET_TOPOLOGY,
    SHIFTED_RELU_TOPOLOGY,
    TOPOLOGY,
    known_topology,
)
from binwrn.models.binary import BinaryConv2d
from binwrn.models.resnet18_wide import WideResNet18
from binwrn.models.wrn import WideResNet

_BN = nn.modules.batchnorm._BatchNorm
PackableNet = WideResNet | WideResNet18
NET_OF_TOPOLOGY = {TOPOLOGY: WideResNet, SHIFTED_RELU_TOPOLOGY: WideResNet,
                   IMAGENET_TOPOLOGY: WideResNet18}


def topology_of(model: PackableNet) -> str:
    if isinstance(model, WideResNet18):
        return IMAGENET_TOPOLOGY
    return SHIFTED_RELU_TOPOLOGY if model.norm == "shifted_relu" else TOPOLOGY


def check_packable(model: PackableNet, kwargs: dict) -> None:
    """Refuse what one bit per weight cannot hold, in one sentence each."""
    convs = model.conv_layers()
    if not any(conv.is_binary for _, conv in convs):
        raise ConfigError(f"Nothing to pack: model.bits={kwargs.get('bits', 32)} has no 1-bit "
                          "weights; export a model trained with model.bits=1.")
    scale = kwargs.get("scale", "he")
    if scale == "none":  # the header's alpha would be He's, not paper 3's 1
        raise ConfigError("model.scale=none (paper 3's +/-1 weights) has no packed format yet: "
                          "only models trained with model.scale=he can be packed.")
    if scale != "he":
        raise ConfigError(f"model.scale={scale} takes its scale from the latent weights, which "
                          "a 1-bit file does not keep: only models trained with model.scale=he "
                          "can be packed.")
    if not kwargs.get("skip", True):
        raise ConfigError("model.skip=false (paper 1 Appendix B's plain net) has no packed "
                          "topology yet, since every .bwn reader adds the shortcuts: only nets "
                          "with skip connections can be packed.")
    if kwargs.get("init_gain", 2.0) != 2.0:
        raise ConfigError(f"model.init_gain={kwargs['init_gain']} gives alphas other than "
                          "sqrt(2/(k*k*C_in)), which readers may recompute from the shape: only "
                          "models trained with model.init_gain=2 can be packed.")


# Model arguments added after format version 1 was written, left out of the header at their
# default so files (and readers that build the net from the header) stay as they were.
LATER_MODEL_KEYS = {"skip": True, "init_gain": 2.0, "final_bn_affine": False}


def header_model(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items()
            if not (k in LATER_MODEL_KEYS and v == LATER_MODEL_KEYS[k])}


def _conv_record(name: str, conv: BinaryConv2d) -> dict:
    c_out, c_in, k, _ = conv.weight.shape
    return {"name": name, "type": "conv2d", "weight": f"{name}.weight", "in_channels": c_in,
            "out_channels": c_out, "kernel_size": k, "stride": conv.stride[0],
            "padding": conv.padding[0], "bits": 1 if conv.is_binary else 32,
            **({"alpha": conv.alpha} if conv.is_binary else {})}


def _bn_record(name: str, bn: _BN) -> dict:
    return {"name": name, "type": "batchnorm", "channels": bn.num_features, "eps": bn.eps,
            "mean": f"{name}.running_mean", "var": f"{name}.running_var",
            "weight": f"{name}.weight" if bn.affine else None,
            "bias": f"{name}.bias" if bn.affine else None}


def _float32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def pack_wrn(model: PackableNet, kwargs: dict, data: dict | None = None,
             source: dict | None = None) -> PackedModel:
    """The packed form of `model`, built from `kwargs` (its constructor's arguments)."""
    check_packable(model, kwargs)
    layers, tensors = [], {}
    for name, module in model.named_modules():  # definition order is forward order
        if isinstance(module, BinaryConv2d):
            layers.append(_conv_record(name, module))
            w = module.weight.detach().cpu()
            tensors[f"{name}.weight"] = (
                np.where(w.numpy() >= 0, 1, -1).astype(np.int8) if module.is_binary
                else _float32(w))
        elif isinstance(module, _BN):
            layers.append(_bn_record(name, module))
            tensors[f"{name}.running_mean"] = _float32(module.running_mean)
            tensors[f"{name}.running_var"] = _float32(module.running_var)
            if module.affine:
                tensors[f"{name}.weight"] = _float32(module.weight)
                tensors[f"{name}.bias"] = _float32(module.bias)
    header = {"topology": topology_of(model), "model": header_model(kwargs),
              "data": data or {}, "source": source or {}, "layers": layers}
    return PackedModel(header, tensors)


def zero_weights(model: PackableNet) -> int:
    """Latent 1-bit weights that are exactly 0 (stored as +1; see the module docstring)."""
    return sum(int((conv.weight == 0).sum()) for _, conv in model.conv_layers()
               if conv.is_binary)


def rebuild_wrn(packed: PackedModel) -> PackableNet:
    """An eval-mode net of the header's topology whose 1-bit weights are alpha * (2b - 1)
    and BN as stored."""
    net = NET_OF_TOPOLOGY[known_topology(packed.header)]
    try:
        model = net(**packed.header["model"])
    except (TypeError, ConfigError) as err:
        raise DataError(f"The packed model's architecture cannot be built ({err}): export it "
                        "again with this binwrn.") from None
    state, convs = model.state_dict(), dict(model.conv_layers())
    for layer in packed.header["layers"]:
        if layer["type"] == "conv2d":
            conv = convs.get(layer["name"])
            if conv is None or (layer["bits"] == 1 and layer.get("alpha") != conv.alpha):
                raise DataError(f"The packed layer {layer['name']} does not match the "
                                "architecture in its header: export the model again.")
            weight = packed.tensors[layer["weight"]].astype(np.float32)
            if layer["bits"] == 1:
                weight = weight * np.float32(layer["alpha"])
            elif conv.bits == 1:  # not binarized when training stopped: computes in fp32
                state[f"{layer['name']}.binary_active"] = torch.tensor(False)
            state[layer["weight"]] = torch.from_numpy(weight)
        else:
            for key in ("mean", "var", "weight", "bias"):
                if layer.get(key):
                    state[layer[key]] = torch.from_numpy(packed.tensors[layer[key]].copy())
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"The packed tensors do not fit the architecture in its header "
                        f"({str(err).splitlines()[-1].strip()}): export it again.") from None
    return model.eval()


@torch.no_grad()
def torch_logits(model: nn.Module, images: np.ndarray, batch_size: int = 500,
                 device: str = "cpu") -> np.ndarray:
    """Eval-mode fp32 logits of float32 NCHW images, computed on `device` in batches."""
    model = model.eval().to(device)
    out = [model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device))
           .cpu().numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
