"""Paper 1's multi-crop ImageNet test (section 4; spec 1.5.3): every test image is cut into 25
crops (5 scales x 5 positions, binwrn.data.imagenet_transforms), the softmax of each crop's
logits is averaged over the crops, and the average is scored top-1 and top-5.

Averaging probabilities, not logits, is what the paper says ("averaging softmax"); the two
can rank classes differently, which the tests check on a hand-made example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn


def crop_averaged_probabilities(model: nn.Module, crops: torch.Tensor,
                                per_image: int) -> torch.Tensor:
    """(images * per_image, C, H, W), each image's crops adjacent -> (images, classes): the
    softmax averaged over each image's crops."""
    logits = model(crops).float()  # float: a bf16 softmax averages with visible round-off
    return logits.softmax(dim=1).unflatten(0, (-1, per_image)).mean(dim=1)


def top_k_hits(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """How many labels are among their row's k highest scores (all of them when k >= classes)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).sum()


@dataclass(frozen=True)
class MultiCropScores:
    crops: int
    images: int
    top1_hits: int
    top5_hits: int

    def summed_over_ranks(self, device: torch.device) -> MultiCropScores:
        """Under DDP each rank scores its own part of the test images: the counts of all."""
        from torch import distributed as dist

        counts = torch.tensor([self.images, self.top1_hits, self.top5_hits], device=device)
        dist.all_reduce(counts)
        images, top1, top5 = counts.tolist()
        return MultiCropScores(self.crops, images, top1, top5)

    def metrics(self) -> dict[str, float]:
        """Logged under test_<crops>crop/, apart from the single-crop test/* metrics."""
        top1, top5 = self.top1_hits / self.images, self.top5_hits / self.images
        prefix = f"test_{self.crops}crop"
        return {f"{prefix}/top1_acc": top1, f"{prefix}/top1_error_pct": 100 * (1 - top1),
                f"{prefix}/top5_acc": top5, f"{prefix}/top5_error_pct": 100 * (1 - top5)}


@torch.inference_mode()
def evaluate_multi_crop(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device, prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x.float(),
) -> MultiCropScores:
    """Score uint8 batches of (images, crops, C, H, W) in eval mode; counts stay on the
    device until the end (no host sync per batch). Run it inside the training's precision
    context (autocast) to test in the arithmetic the net was trained in."""
    was_training = model.training
    model.eval()
    hits = torch.zeros(2, dtype=torch.long, device=device)
    images = crops = 0
    try:
        for batch, labels in batches:
            batch, labels = batch.to(device, non_blocking=True), labels.to(device)
            probabilities = crop_averaged_probabilities(
                model, prepare(batch.flatten(0, 1)), per_image=batch.shape[1])
            hits += torch.stack([top_k_hits(probabilities, labels, k) for k in (1, 5)])
            images, crops = images + len(labels), batch.shape[1]
    finally:
        model.train(was_training)
    top1, top5 = hits.tolist()
    return MultiCropScores(crops, images, top1, top5)
