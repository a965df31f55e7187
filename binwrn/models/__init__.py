"""Networks and 1-bit layers. Models take plain arguments; they never read a config."""

from binwrn.models.binary import BinaryConv2d, he_scale
from binwrn.models.resnet18_wide import WideResNet18
from binwrn.models.summary import SizeSummary, size_summary
from binwrn.models.wrn import WideResNet

__all__ = ["BinaryConv2d", "SizeSummary", "WideResNet", "WideResNet18", "he_scale",
           "size_summary"]
