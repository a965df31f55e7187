"""Networks and 1-bit layers. Models take plain arguments; they never read a config.

The names below load on first use, so that `binwrn.models.rules` (the allowed values and
shape rules, without torch) can be read by the config check before torch loads.
"""

from importlib import import_module

_HOMES = {"BINARY_LAYERS": "binary", "BinaryConv2d": "binary", "BinaryLinear": "binary",
          "he_scale": "binary", "MLP": "mlp", "CifarResNet": "resnet",
          "WideResNet18": "resnet18_wide", "SizeSummary": "summary",
          "size_summary": "summary", "VGG": "vgg", "WideResNet": "wrn", "ResNet21": "resnet21"}

__all__ = ["BINARY_LAYERS", "MLP", "VGG", "BinaryConv2d", "BinaryLinear", "CifarResNet",
           "ResNet21", "SizeSummary", "WideResNet", "WideResNet18", "he_scale", "size_summary"]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"binwrn.models.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'binwrn.models' has no attribute {name!r}")
