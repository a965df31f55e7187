"""How close binwrn's fast BN moments come to torch.var_mean's (docs/speed.md).

    python docs/bn_moments_probe.py CHECKPOINT CIFAR10_ROOT [BATCHES]

Forwards BATCHES augmented CIFAR-10 training batches through the WRN-10-1 1-bit net of
CHECKPOINT (a one-epoch run's final.ckpt) in training mode and, at every BN layer, compares
the two-pass double moments with var_mean's Welford ones computed in double, relative to the
channel's mean square; then counts the layers whose float32 moments differ from var_mean's
(batch_moments, fallback included) and the layers where a channel was re-reduced. Last, the
cost: the same batches forwarded alone, with batch_moments at every BN layer and with
var_mean there (ms per batch: the median and range of three interleaved passes, with
binwrn-run's memory settings).
"""

from __future__ import annotations

import statistics
import sys
import time
from itertools import islice

import torch

from binwrn.allocator import keep_freed_memory
from binwrn.data.augment import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.data.sources import load_splits
from binwrn.models.wrn import WideResNet
from binwrn.train import bn_stats


def main(checkpoint: str, root: str, count: int) -> None:
    train, test = load_splits("cifar10", root, 10)
    data = DeviceAugmentedData(train, test, 125, Augment(cutout=18))
    model = WideResNet(depth=10, width=1, bits=1)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("model."):]: v for k, v in state.items()
                           if k.startswith("model.")})
    found = {"largest mean difference": 0.0, "largest variance difference": 0.0,
             "layer batches": 0, "differing": 0, "re-reduced": 0}
    welford = torch.var_mean

    def counted(*args, **kwargs):
        found["re-reduced"] += 1
        return welford(*args, **kwargs)

    def compare(module, inputs) -> None:
        x, dims = inputs[0], [0, 2, 3]
        var_w, mean_w = welford(x.double(), dim=dims, unbiased=False)
        mean = x.sum(dims, dtype=torch.float64) / (x.numel() // x.shape[1])
        var = (x.double() - mean.view(1, -1, 1, 1)).square().mean(dims)
        square = mean * mean + var
        for key, diff in (("largest mean difference", (mean - mean_w).abs() / square.sqrt()),
                          ("largest variance difference", (var - var_w).abs() / square)):
            found[key] = max(found[key], float(diff.max()))
        bn_stats.torch.var_mean = counted
        fast = bn_stats.batch_moments(x)
        bn_stats.torch.var_mean = welford
        exact = welford(x, dim=dims, unbiased=False)
        found["layer batches"] += 1
        found["differing"] += int(not all(map(torch.equal, fast, exact)))

    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train()
    batches = list(islice(data.augmented_train_batches(torch.device("cpu")), count))
    hooks = [layer.register_forward_pre_hook(compare) for layer in layers]
    with torch.inference_mode():
        for images in batches:
            model(images)
    for hook in hooks:
        hook.remove()
    for key, value in found.items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")
    modes = {"forward alone": None, "with batch_moments": bn_stats.batch_moments,
             "with var_mean": lambda x: welford(x, dim=[0, 2, 3], unbiased=False)}
    passes = {name: [] for name in modes}
    for _ in range(3):  # rounds of the three, so that the machine's drift hits each alike
        for name, moments in modes.items():
            hooks = [layer.register_forward_pre_hook(_reading(moments))
                     for layer in layers] if moments else []
            passes[name].append(_ms_per_batch(model, batches))
            for hook in hooks:
                hook.remove()
    for name, times in passes.items():
        print(f"{name}: {statistics.median(times):.1f} ms per batch "
              f"({min(times):.1f}-{max(times):.1f})")


def _reading(moments):
    """A pre-hook that computes the moments and leaves the layer's input as it is."""
    def hook(module, inputs) -> None:
        moments(inputs[0])
    return hook


def _ms_per_batch(model: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    with torch.inference_mode():
        started = time.perf_counter()
        for images in batches:
            model(images)
    return (time.perf_counter() - started) / len(batches) * 1e3


if __name__ == "__main__":
    keep_freed_memory()
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
