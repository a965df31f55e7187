"""Deploying a 1-bit WRN (CIFAR-style, or paper 1's ImageNet 18-2.5): the packed `.bwn`
format, its readers, ONNX, and the size report.

Paper-spec 1.7: every binary weight is stored as one bit (b=1 for +1), the per-layer scale
alpha and the BN moments travel beside them as floats. Layers by dependency:

- `format`: bytes <-> `PackedModel` (NumPy only; no pickle, so reading cannot run code);
- `graph`: the nets' wiring as a list of operations, read from a header (NumPy only);
- `numpy_runtime`: logits with NumPy alone, the proof that the format is self-contained;
- `onnx_export`: the same operations as a standard ONNX graph (onnx, onnxruntime);
- `pack`: a trained PyTorch `WideResNet` or `WideResNet18` <-> `PackedModel` (torch);
- `source`, `job`, `evaluate`, `report`: what `binwrn-export` and `binwrn-eval` do.

Import from the submodules; this package imports nothing, so the NumPy runtime stays light.
"""
