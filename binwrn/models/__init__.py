"""Networks and 1-bit layers. Models take plain arguments; they never read a config."""

from binwrn.models.binary import BINARY_LAYERS, BinaryConv2d, BinaryLinear, he_scale
from binwrn.models.mlp import MLP
from binwrn.models.resnet import CifarResNet
from binwrn.models.resnet18_wide import WideResNet18
from binwrn.models.resnet21 import ResNet21
from binwrn.models.summary import SizeSummary, size_summary
from binwrn.models.vgg import VGG
from binwrn.models.wrn import WideResNet

__all__ = ["BINARY_LAYERS", "MLP", "VGG", "BinaryConv2d", "BinaryLinear", "CifarResNet",
           "ResNet21", "SizeSummary", "WideResNet", "WideResNet18", "he_scale", "size_summary"]
