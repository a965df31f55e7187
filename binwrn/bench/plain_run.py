"""The plain side of binwrn-bench's whole-run row: the work of a one-epoch `binwrn-run`, as a
PyTorch user writes it in one script and one process.

`python -m binwrn.bench.plain_run ROOT DEPTH WIDTH BITS`: read the CIFAR-10 batches under
ROOT, train one epoch of the WRN (the same network, augmentation, SGD, batch of 125 and
learning-rate schedule), test with BN's running averages as binwrn-run does after every epoch,
recompute the BN statistics over the training batches as PyTorch offers it (momentum None:
cumulative averages), test again, and print the accuracy. No Lightning, MLflow, checkpoint or
figure: what binwrn-run costs beyond this is its orchestration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn import functional as F

from binwrn.data.augment import Augment
from binwrn.data.cifar_pickle import read_cifar_batches
from binwrn.models.wrn import WideResNet
from binwrn.train.optimizers import optimizer_groups
from binwrn.train.schedules import build_schedule

BATCH, EVAL_BATCH = 125, 500


def _tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(split.labels)


def _augmented_batches(images: torch.Tensor, augment: Augment):
    order = torch.randperm(len(images))
    for start in range(0, len(images) - BATCH + 1, BATCH):
        index = order[start:start + BATCH]
        yield augment(images[index].float()), index


@torch.inference_mode()
def _accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(images[i:i + EVAL_BATCH].float()).argmax(1)
                       == labels[i:i + EVAL_BATCH]).sum())
                  for i in range(0, len(images), EVAL_BATCH))
    return correct / len(images)


def main() -> None:
    root, depth, width, bits = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    torch.manual_seed(0)
    folder = root / "cifar-10-batches-py"
    train = _tensors(read_cifar_batches(folder, "cifar10", "train", verify_checksums=False))
    test = _tensors(read_cifar_batches(folder, "cifar10", "test", verify_checksums=False))
    model = WideResNet(depth=depth, width=width, bits=bits)
    optimizer = torch.optim.SGD(optimizer_groups(model, 5e-4), lr=0.1, momentum=0.9)
    schedule = build_schedule("sgdr", 0.1, lr_min=1e-5, first_cycle=2, cycle_mult=2)
    augment = Augment(flip=True, pad=4, cutout=18)
    steps = len(train[0]) // BATCH
    model.train()
    loss_sum = torch.zeros(())
    for step, (x, index) in enumerate(_augmented_batches(train[0], augment)):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr((step + 1) / steps)
        loss = F.cross_entropy(model(x), train[1][index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
    running = _accuracy(model, *test)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.inference_mode():
        for x, _ in _augmented_batches(train[0], augment):
            model(x)
    print(f"train loss {float(loss_sum) / steps:.4f}, test acc {running:.4f} (running "
          f"statistics), {_accuracy(model, *test):.4f} (recomputed)")


if __name__ == "__main__":
    main()
