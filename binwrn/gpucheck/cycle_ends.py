"""Test accuracy with recomputed BN statistics at the ends of a run's SGDR cycles.

Read from the run's `test_recomputed/acc` history where the training logged it; otherwise
recomputed here from the run's cycle-end checkpoints with the project's own code (Prepared
data and model, `recompute_bn_statistics` over every augmented training batch, the test set
in eval mode), in the run's arithmetic. The last cycle's point is the run's final test/acc,
which binwrn-run measures after recomputing the statistics.
"""

from __future__ import annotations

from contextlib import nullcontext
from itertools import islice
from pathlib import Path

import torch

RECOMPUTED_KEY = "test_recomputed/acc"


def logged_points(client, run_id: str, cycle_ends: tuple[int, ...]) -> dict[int, float]:
    """Cycle end -> logged recomputed accuracy, for the ends logged at step e (epochs done)
    or e - 1 (the 0-based index of the epoch that ends the cycle)."""
    by_step = {m.step: m.value for m in client.get_metric_history(run_id, RECOMPUTED_KEY)}
    found = {}
    for end in cycle_ends:
        for step in (end, end - 1):
            if step in by_step:
                found[end] = by_step[step]
                break
    return found


def _autocast(precision: str, device: torch.device):
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def recomputed_accuracy(run_dir: Path, epoch: int, overrides: list[str], device: str) -> float:
    """Load cycle-end-epoch<epoch>.ckpt into the run's net, recompute BN, test."""
    from binwrn.configuration.prepare import prepare
    from binwrn.configuration.stored import load_config
    from binwrn.data.datamodule import DeviceAugmentedData
    from binwrn.export.source import load_state_dict
    from binwrn.train.bn_stats import recompute_bn_statistics
    from binwrn.train.fast_path import resolve_precision

    cfg = load_config(run_dir / ".hydra" / "config.yaml", overrides)
    prepared = prepare(cfg)
    model = prepared.model.to(device)
    state = load_state_dict(run_dir / "checkpoints" / f"cycle-end-epoch{epoch:04d}.ckpt")
    model.load_state_dict(state)
    target = torch.device(device)
    data = DeviceAugmentedData(prepared.train, prepared.test, cfg.data.batch_size,
                               prepared.augment, cfg.data.eval_batch_size)
    torch.manual_seed(cfg.seed)
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    with _autocast(precision, target):
        batches = islice(data.augmented_train_batches(target), cfg.bn.recompute_batches)
        recompute_bn_statistics(model, batches)
        model.eval()
        correct = 0
        for images, labels in data.test_dataloader():
            logits = model(images.to(target).float())
            correct += int((logits.argmax(dim=1).cpu() == labels).sum())
    return correct / len(data.test_set)
