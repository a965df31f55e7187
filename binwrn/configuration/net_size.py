"""How many weights the configured net would have, counted without building it (no torch):
binwrn-run refuses a net too large to train before any allocation (`model.width=100000` was
an allocator error for 92 TB)."""

from __future__ import annotations

# Seven times the largest net of the three papers (paper 1's ImageNet WRN-18-2.5, ~70 M).
MAX_WEIGHTS = 500_000_000


def wrn_weights(depth: int, width: int, channels: int, classes: int) -> int:
    """Paper 1's WRN-D-k (models/wrn.py): conv 3x3 in -> 16k, 3 stages of n blocks (two 3x3
    convs each) at 16k/32k/64k, 1x1 conv to the classes. 74,800 at D=10, k=1, CIFAR-10."""
    n = next(((depth - k) // 6 for k in (2, 4) if depth >= 6 + k and (depth - k) % 6 == 0), 1)
    c_in = 16 * width
    total = 9 * channels * c_in
    for c in (16 * width, 32 * width, 64 * width):  # the first block widens, n-1 keep c
        total += 9 * c_in * c + 9 * c * c + (n - 1) * 18 * c * c
        c_in = c
    return total + 64 * width * classes


def resnet18_weights(width: float, channels: int, classes: int) -> int:
    """ResNet-18 widened by `width` (models/resnet18_wide.py), to within its shortcuts:
    7x7 stem, four stages of two blocks at 64w, 128w, 256w, 512w, a linear classifier."""
    widths = [round(64 * width * 2**s) for s in range(4)]
    total, c_in = 49 * channels * widths[0], widths[0]
    for c in widths:
        total += 9 * c_in * c + 3 * 9 * c * c + c_in * c  # two blocks, and the shortcut
        c_in = c
    return total + widths[-1] * classes


def mlp_weights(hidden: list[int], inputs: int, classes: int) -> int:
    sizes = [inputs, *hidden, classes]
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
