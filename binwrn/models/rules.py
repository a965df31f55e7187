"""The allowed values and shape rules of binwrn's networks, without torch: the constructors
(binary.py, wrn.py, resnet.py, vgg.py, resnet18_wide.py, layer_order) and the config check
that answers before torch loads (binwrn/configuration/checks.py) both read them here, so each
rule has one home and one sentence.
"""

from __future__ import annotations

import math

from binwrn.errors import ConfigError, not_allowed, shown

SCALES = ("he", "mean_abs", "mean_abs_channel", "none")  # binary.py: the 1-bit weights' scale
GRADS = ("pass_through", "alpha_scaled")  # binary.py: the sign's backward pass
INITS = ("he", "torch")  # binary.py: the latent weights' initialisation
NORMS = ("batchnorm", "shifted_relu")  # wrn.py: paper 1's BN+ReLU, paper 2's shifted ReLU
# layer_order.py: iterative.order's names (paper 3, spec 3.3; the *_official lists, spec 3.6)
NAMED_ORDERS = ("none", "forward", "reverse", "random", "random_official", "ascend", "descend",
                "single", "ascend_official", "descend_official")
VGG_DEPTHS = (5, 9)  # vgg.py: paper 3's VGG-5 and VGG-9
RESNET18_DEPTHS = (18,)  # resnet18_wide.py: paper 1's ImageNet net
RESNET21_DEPTH = 21  # resnet21.py: 1 stem + 16 block convs + 3 downsample convs + 1 FC
BASE_WIDTH = 64  # ImageNet nets' first-stage channels; paper 1: "64k on ImageNet"
# Whole numbers without a tighter bound of their own stop here: a count past it is a typo,
# and every loop or allocation it drives stays bounded (issue 27: max_epochs=10^8 hung).
MOST = 2**31 - 1
MOST_DEPTH = 1000


def is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def blocks_per_stage(depth: object) -> int:
    """Blocks per stage n of a Wide ResNet, for a depth in either naming of the same network.

    McDonnell's D = 6n+2 counts the first conv, 2 convs per block and the 1x1 classifier
    (spec 1.2.1). Zagoruyko's D = 6n+4 also counts the two 1x1 projection shortcuts that this
    design replaces with pooling, so his WRN-22-10 is the paper's 20-10 (paper 1 footnote 1).
    Accepting both lets `model.depth=10` name the smallest net (n=1, 74,800 weights at k=1),
    as the product's examples do (so depths 20 and 22 build the same network).
    """
    if is_whole(depth) and depth <= MOST_DEPTH:
        for offset in (2, 4):
            if depth >= 6 + offset and (depth - offset) % 6 == 0:
                return (depth - offset) // 6
    raise ConfigError(f"model.depth={shown(depth)} is not a Wide ResNet depth: use 6n+2 (8, 14, "
                      "20, 26, ...) or Zagoruyko's 6n+4 naming of the same nets (10, 16, 22, "
                      f"28, ...), at most {MOST_DEPTH}.")


def check_wrn_width(width: object) -> None:
    if not (is_whole(width) and 1 <= width <= MOST):
        raise not_allowed("model.width", width, "a whole number >= 1")


def check_resnet_depth(depth: object) -> None:
    """paper 3's CIFAR ResNet: 6n+2 (3 stages of n two-conv blocks, the first conv, the FC)."""
    if not (is_whole(depth) and 8 <= depth <= MOST_DEPTH and (depth - 2) % 6 == 0):
        raise ConfigError(f"model.depth={shown(depth)} is not a CIFAR ResNet depth: use 6n+2 "
                          f"(paper 3: 20; also 8, 14, 32, 44, 56, ...), at most {MOST_DEPTH}.")


def check_vgg_depth(depth: object) -> None:
    if not (is_whole(depth) and depth in VGG_DEPTHS):
        raise ConfigError(f"model.depth={shown(depth)} is not a VGG of paper 3: use "
                          f"{' or '.join(map(str, VGG_DEPTHS))}.")


def check_resnet18_depth(depth: object) -> None:
    if not (is_whole(depth) and depth in RESNET18_DEPTHS):
        raise ConfigError(f"model.depth={shown(depth)} is not built for model=resnet18_wide: "
                          "use 18 (paper 1's ImageNet net).")


def check_resnet21_depth(depth: object) -> None:
    if not (is_whole(depth) and depth == RESNET21_DEPTH):
        raise ConfigError(f"model.depth={shown(depth)} is not allowed: ResNet-21 is paper 3's "
                          f"count of ResNet-18's weight layers, use {RESNET21_DEPTH}.")


def first_stage_width(width: object) -> int:
    """64k channels in the first stage of an ImageNet net; 64k must be a whole number (k=2.5
    gives the paper's 160)."""
    if not (is_number(width) and 0 < width <= 10_000
            and float(BASE_WIDTH * width).is_integer()):
        raise ConfigError(f"model.width={shown(width)} is not allowed here: 64 x width must be a "
                          "whole number of channels (2.5 gives the paper's 160; 0.125 gives 8), "
                          "and width at most 10,000.")
    return int(BASE_WIDTH * width)


def check_norm(norm: object, temperature: object, final_bn_affine: object = False) -> None:
    """A norm we build, and a temperature that can scale the logits (paper 2, spec 2.2)."""
    if norm not in NORMS:
        raise ConfigError(f"model.norm={norm} is not supported: use one of {NORMS}.")
    if norm == "shifted_relu" and final_bn_affine:
        raise ConfigError("model.final_bn_affine=true needs the BN on the logits, which "
                          "model.norm=shifted_relu does not have: drop it.")
    if norm == "batchnorm" and temperature is not None:
        raise ConfigError(f"model.temperature={temperature} only applies to "
                          "model.norm=shifted_relu (with batchnorm the BN on the logits undoes "
                          "any scaling): drop it or set model.norm=shifted_relu.")
    if norm == "shifted_relu" and not (is_number(temperature) and temperature > 0):
        raise not_allowed("model.temperature", temperature, "a positive number with "
                          "model.norm=shifted_relu (paper 2: 80 fp32 / 40 1-bit on CIFAR-10, 25 "
                          "on CIFAR-100)")


def check_weight_options(scale: object, grad: object, init: object) -> None:
    """The 1-bit layers' options (binary.py)."""
    for key, value, allowed in (("model.scale", scale, SCALES), ("model.grad", grad, GRADS),
                                ("model.init", init, INITS)):
        if value not in allowed:
            raise ConfigError(f"{key}={value} is not supported: use one of {allowed}.")
