"""Which 1-bit layer turns binary when: paper 3's layer-by-layer schedule (Lan 2021).

Spec 3.3 (from the official code, `LayerControl.binarize_layer`): given an order of the L
binarizable layers and E epochs per layer, layer order[i] turns binary at the start of epoch
i*E (0-based) and stays binary; from epoch (L-1)*E the whole net is binary and trains so until
the epoch budget ends.

Layer names are the module names of a net's 1-bit weight layers (convolutions and, in paper
3's nets, fully connected layers) in forward order: for WRN-20-k, `conv_in`,
`blocks.0.conv1`, `blocks.0.conv2`, ..., `blocks.8.conv2`, `conv_out`; for paper 3's
ResNet-20 the same with `fc` last; `fc1`, `fc2`, `fc3` for an MLP; `conv1`, `conv2`, `fc3`,
`fc4`, `fc5` for VGG-5 (paper 3 numbers them 1..L in this order). Layers kept fp32
(model.first_last_fp32) are not in it.

Guided orders (spec 3.6) come from a sensitivity ranking: each layer alone binary for E'
epochs (`iterative.order=single iterative.layer=<name>`, or binwrn-sensitivity), then
validation accuracy; the ranking is a JSON file or, with `iterative.ranking=store`, the
newest such single-layer runs of the same network in the tracking store. "ascend" is
ascending *sensitivity*: the layer whose solo binarization costs the least validation
accuracy (the highest accuracy) goes first, "descend" the reverse. The official code does
not say which quantity ascends; the spec infers this from its ResNet-20 list, where the
(surely most harmful) classifier comes last in "ascend".

Nothing here imports Lightning, so `binwrn.configuration.prepare` refuses a bad order early.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from torch import nn

from binwrn.errors import ConfigError
from binwrn.models.binary import BINARY_LAYERS, BinaryWeight
from binwrn.models.official_orders import PAPER3_ASCEND
from binwrn.models.rules import NAMED_ORDERS

# Paper 3's "random" orders as its official code ships them ([IT], spec 3.6), as 1-based
# layer numbers in forward order, by net (model.label). The spec lists none for the MLPs (the
# code runs all 6 orders of their 3 layers) or for the ImageNet ResNet-21, so none is made up.
PAPER3_RANDOM = {
    "vgg5": (2, 5, 1, 3, 4),
    "vgg9": (3, 8, 1, 5, 6, 9, 2, 4, 7),
    "resnet20": (4, 14, 10, 11, 13, 6, 9, 2, 15, 8, 17, 7, 18, 16, 20, 5, 1, 19, 12, 3),
}


def binarizable_layers(model: nn.Module) -> list[tuple[str, BinaryWeight]]:
    """The 1-bit weight layers in forward order (fp32 ones, e.g. first_last_fp32, are not)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, BINARY_LAYERS) and m.bits == 1]


def binarizable_names(model: nn.Module) -> list[str]:
    return [name for name, _ in binarizable_layers(model)]


def set_binary_layers(model: nn.Module, binary: set[str]) -> None:
    """The named 1-bit layers binary, every other 1-bit layer fp32."""
    for name, conv in binarizable_layers(model):
        conv.set_binary(name in binary)


def guided_orders(accuracy: dict[str, float], layers: list[str]) -> dict[str, list[str]]:
    """ascend (least sensitive, highest accuracy first) and descend (its reverse).

    Ties keep forward order, so equal accuracies give a reproducible ranking."""
    ascend = sorted(layers, key=lambda name: (-accuracy[name], layers.index(name)))
    return {"ascend": ascend, "descend": ascend[::-1]}


def ranking_record(accuracy: dict[str, float], layers: list[str]) -> dict:
    """The JSON binwrn-sensitivity writes and `iterative.ranking` reads."""
    return {"layers": list(layers), "accuracy": {n: accuracy[n] for n in layers},
            **guided_orders(accuracy, layers)}


def check_complete(order: list[str], layers: list[str], source: str) -> list[str]:
    """An order must name every binarizable layer exactly once; anything else is refused."""
    unknown = [n for n in order if n not in layers]
    missing = [n for n in layers if n not in order]
    repeated = sorted({n for n in order if order.count(n) > 1})
    if unknown or missing or repeated:
        problems = "; ".join(f"{what} {names}" for what, names in (
            ("unknown", unknown), ("missing", missing), ("repeated", repeated)) if names)
        raise ConfigError(f"{source} does not name each 1-bit layer once ({problems}): "
                          f"use a permutation of {layers}.")
    return list(order)


def read_ranking(ranking: str | Path | dict, direction: str, layers: list[str]) -> list[str]:
    """The `direction` ("ascend" or "descend") list of a ranking (a JSON file, or the record
    itself, as the tracking store's single-layer runs give it), checked against layers."""
    path = ranking if not isinstance(ranking, dict) else "the stored ranking"
    try:
        record = ranking if isinstance(ranking, dict) else json.loads(Path(path).read_text())
        order = record[direction]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"iterative.ranking={path} cannot be read as a ranking with an "
                          f"'{direction}' list ({type(err).__name__}: {err}): give the JSON "
                          "that binwrn-sensitivity writes.") from None
    return check_complete(list(order), layers, f"The '{direction}' list of {path}")


# The shipped lists by order name; "descend" is each "ascend" list reversed, as the spec's
# descend lists are (spec 3.6). The MLPs have none: their code runs all 6 orders.
OFFICIAL_LISTS = {
    "random_official": (PAPER3_RANDOM, "iterative.order=random to draw one with the seed"),
    "ascend_official": (PAPER3_ASCEND, "iterative.order=ascend with a ranking of your own "
                                       "(binwrn-sensitivity)"),
    "descend_official": ({net: numbers[::-1] for net, numbers in PAPER3_ASCEND.items()},
                         "iterative.order=descend with a ranking of your own "
                         "(binwrn-sensitivity)"),
}


def official_order(order: str, net: str | None, layers: list[str]) -> list[str]:
    """Paper 3's shipped `order` list for `net`, as layer names (spec 3.6)."""
    lists, instead = OFFICIAL_LISTS[order]
    numbers = lists.get(net or "")
    if numbers is None or len(numbers) != len(layers):
        raise ConfigError(f"iterative.order={order} exists for paper 3's "
                          f"{', '.join(lists)} only (the lists its code ships, spec "
                          f"3.6), not for {net} with {len(layers)} 1-bit layers: use "
                          f"{instead}.")
    return [layers[n - 1] for n in numbers]


def resolve_order(order, layers: list[str], seed: int, ranking: str | dict | None,
                  layer: str | None = None, net: str | None = None) -> list[str] | None:
    """The layer names in the order they turn binary; None for paper 1's all-at-once.

    "single" is `layer` alone: binary from the first epoch to the last, every other 1-bit
    layer fp32 throughout (a sensitivity run, spec 3.6). "random_official",
    "ascend_official" and "descend_official" are paper 3's shipped lists for `net` (its label:
    vgg5, vgg9, resnet20; resnet21 for the guided ones)."""
    if not isinstance(order, str):  # an explicit list of names
        return check_complete([str(n) for n in order], layers, f"iterative.order={list(order)}")
    if order not in NAMED_ORDERS:
        raise ConfigError(f"iterative.order={order} is not supported: use one of "
                          f"{NAMED_ORDERS} or a list of layer names.")
    if order == "none":
        return None
    if not layers:
        raise ConfigError(f"iterative.order={order} needs 1-bit layers: set model.bits=1.")
    if order == "single":
        if layer not in layers:
            raise ConfigError(f"iterative.order=single needs iterative.layer=<one of the 1-bit "
                              f"layers {layers}>, not {layer}.")
        return [layer]
    if order in ("ascend", "descend"):
        if ranking is None:
            raise ConfigError(f"iterative.order={order} needs iterative.ranking=<path to the "
                              "JSON binwrn-sensitivity writes> or iterative.ranking=store.")
        return read_ranking(ranking, order, layers)
    if order == "random":  # one drawn with `seed`; random_official is paper 3's own list
        return random.Random(seed).sample(layers, len(layers))
    if order in OFFICIAL_LISTS:
        return official_order(order, net, layers)
    return list(layers) if order == "forward" else list(layers)[::-1]


def check_epochs_per_layer(epochs: object) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"iterative.epochs_per_layer={epochs} is not allowed: use a whole "
                          "number >= 1.")
    return epochs


def binary_count(epoch: int, epochs_per_layer: int, n_layers: int) -> int:
    """How many layers of the order are binary during 0-based `epoch`: order[i] from i*E."""
    return min(epoch // epochs_per_layer + 1, n_layers)


def fully_binary_warning(n_layers: int, epochs_per_layer: int, max_epochs: int) -> str | None:
    """Said once, not refused: a budget too short to reach a fully binary net."""
    last = (n_layers - 1) * epochs_per_layer
    if last < max_epochs:
        return None
    return (f"iterative.epochs_per_layer={epochs_per_layer}: the last of {n_layers} layers "
            f"turns binary at epoch {last + 1}, after trainer.max_epochs={max_epochs}, so the "
            "trained net is not fully binary")
