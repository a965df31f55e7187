"""Paper 1's multi-crop test: softmax averaged over crops, scored top-1 and top-5.

The "model" is nn.Flatten over (N, classes, 1, 1) inputs, so each crop's logits are exactly
the numbers written here and the expected results can be worked out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from binwrn.train.multi_crop import (
    MultiCropScores,
    crop_averaged_probabilities,
    evaluate_multi_crop,
    top_k_hits,
)


def _as_crops(logits: list[list[list[float]]]) -> torch.Tensor:
    """[image][crop][class] logits -> (images * crops, classes, 1, 1), each image's crops
    adjacent, as the multi-crop loader flattens them."""
    return torch.tensor(logits).flatten(0, 1)[..., None, None]


# Image 0: one very confident crop for class 0, two moderate ones for class 1. Averaging
# logits would pick class 0 (10/3 > 4/3); averaging softmax, as the paper does, picks class 1:
# softmax([2, 0, 0, 0, 0, 0])[0] = e^2 / (e^2 + 5) = 0.5964.
IMAGE0 = [[10, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0]]
IMAGE1 = [[0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 3]]  # class 5 throughout


def test_probabilities_are_the_softmax_averaged_over_each_images_crops():
    probabilities = crop_averaged_probabilities(nn.Flatten(), _as_crops([IMAGE0, IMAGE1]), 3)
    assert probabilities.shape == (2, 6)
    assert probabilities.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])
    e = math.e
    confident, moderate = e**10 / (e**10 + 5), e**2 / (e**2 + 5)
    class0 = (confident + 2 / (e**2 + 5)) / 3
    class1 = (1 / (e**10 + 5) + 2 * moderate) / 3
    assert probabilities[0, 0].item() == pytest.approx(class0, rel=1e-6)  # 0.3871
    assert probabilities[0, 1].item() == pytest.approx(class1, rel=1e-6)  # 0.3976
    assert probabilities.argmax(dim=1).tolist() == [1, 5]
    assert torch.tensor(IMAGE0).float().mean(dim=0).argmax().item() == 0  # logits would differ
    assert probabilities[1, 5].item() == pytest.approx(e**3 / (e**3 + 5), rel=1e-6)


def test_top_k_hits():
    scores = torch.tensor([[0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02],   # label 0: top-1
                           [0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02],   # label 4: top-5 only
                           [0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02]])  # label 6: neither
    labels = torch.tensor([0, 4, 6])
    assert top_k_hits(scores, labels, 1).item() == 1
    assert top_k_hits(scores, labels, 5).item() == 2
    assert top_k_hits(scores[:, :3], torch.tensor([2, 2, 1]), 5).item() == 3  # k > classes


def test_evaluation_over_batches_counts_and_names_its_metrics():
    model = nn.Sequential(nn.BatchNorm2d(6), nn.Flatten())  # BN shows train/eval mode
    model[0].running_var.fill_(1.0)  # eval-mode BN: identity (mean 0, var 1, eps tiny)
    model[0].eps = 1e-12  # torch 2.11 refuses 0 ("batch_norm eps must be positive")
    # Two batches of (images, crops=3, classes, 1, 1) integer logits, and a label per image.
    first = torch.tensor([IMAGE0, IMAGE1]).reshape(2, 3, 6, 1, 1)
    ranked = [[0, 1, 2, 3, 4, 5]] * 3  # class 5 first ... class 0 last
    second = torch.tensor([ranked, ranked]).reshape(2, 3, 6, 1, 1)
    # Labels: image 0 class 1 and image 1 class 5 (both top-1), then class 2 (4th: top-5
    # only) and class 0 (6th: neither).
    batches = [(first, torch.tensor([1, 5])), (second, torch.tensor([2, 0]))]
    model.train()
    scores = evaluate_multi_crop(model, batches, torch.device("cpu"))
    assert model.training  # restored
    assert scores == MultiCropScores(crops=3, images=4, top1_hits=2, top5_hits=3)
    metrics = scores.metrics()
    assert metrics["test_3crop/top1_acc"] == pytest.approx(0.5)
    assert metrics["test_3crop/top5_error_pct"] == pytest.approx(25.0)
    assert set(metrics) == {"test_3crop/top1_acc", "test_3crop/top1_error_pct",
                            "test_3crop/top5_acc", "test_3crop/top5_error_pct"}
