"""The GPU path on a GPU (marker `gpu`, run by `binwrn-gpucheck`): the fast path's switches
agree with the plain path on CUDA, and a packed model evaluated there keeps its accuracy.

The device is $BINWRN_CHECK_DEVICE (default cuda): `binwrn-gpucheck --cpu` runs these same
tests on the CPU; in `make test` they are skipped where no CUDA device is present (the CPU
versions of each switch are in tests/test_fast_path.py). fp32 comparisons switch TF32 off,
so "fp32" means fp32 on both sides.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from helpers_export import trained_looking_wrn
from helpers_fast_path import train_losses

from binwrn.configuration.compose import compose
from binwrn.configuration.stored import run_config
from binwrn.export.evaluate import evaluate_packed
from binwrn.export.format import decode, encode
from binwrn.export.pack import pack_wrn, rebuild_wrn, torch_logits
from binwrn.train.fast_path import FastPath, resolve_precision

DEVICE = os.environ.get("BINWRN_CHECK_DEVICE", "cuda")
PLAIN = FastPath(channels_last=False, compile=False)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                       reason="no CUDA device (binwrn-gpucheck --cpu runs these on the CPU)"),
]


@pytest.fixture(autouse=True)
def fp32_means_fp32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_precision_auto_is_bf16_on_a_bf16_gpu():
    expected = ("bf16-mixed" if DEVICE.startswith("cuda") and torch.cuda.is_bf16_supported()
                else "32-true")
    accelerator = "gpu" if DEVICE.startswith("cuda") else "cpu"
    assert resolve_precision("auto", accelerator) == expected


def test_channels_last_agrees_with_the_plain_path():
    plain, _ = train_losses(PLAIN, device=DEVICE)
    fast, _ = train_losses(FastPath(True, False), device=DEVICE)
    assert plain[0] != plain[-1] and fast == pytest.approx(plain, rel=1e-3)


def test_bf16_stays_near_fp32():
    plain, _ = train_losses(PLAIN, device=DEVICE)
    bf16, _ = train_losses(PLAIN, "bf16-mixed", device=DEVICE)
    assert bf16 != plain and bf16 == pytest.approx(plain, rel=0.05)


def test_compile_agrees_with_the_plain_path():
    plain, _ = train_losses(PLAIN, steps=3, device=DEVICE)
    compiled, weights = train_losses(FastPath(False, True), steps=3, device=DEVICE)
    assert compiled == pytest.approx(plain, rel=1e-3)
    assert not any(k.startswith("_orig_mod") for k in weights)


def test_whole_fast_path_stays_near_the_plain_path():
    plain, _ = train_losses(PLAIN, steps=3, device=DEVICE)
    fast, _ = train_losses(FastPath(True, True), "bf16-mixed", steps=3, device=DEVICE)
    assert fast == pytest.approx(plain, rel=0.05)


def test_packed_model_evaluated_on_the_device_keeps_its_accuracy():
    """Pack, decode, rebuild: logits on the device equal the trained model's on the CPU, and
    the whole-test-set accuracy is the same number on both."""
    model, kwargs = trained_looking_wrn()
    data = {"dataset": "digits", "num_classes": 10, "image_size": 32, "test_limit": 200}
    blob, _ = encode(pack_wrn(model, kwargs, data, {"from": "test"}))
    packed = decode(blob, "the packed model")
    images = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32)).astype(np.float32)
    on_cpu = torch_logits(model, images)
    on_device = torch_logits(rebuild_wrn(packed), images, device=DEVICE)
    assert np.abs(on_device - on_cpu).max() <= 1e-4 * max(1.0, np.abs(on_cpu).max())
    cfg = run_config(compose(["dataset=digits", "data.test_limit=200"]))
    cpu_acc = evaluate_packed(packed, cfg, "torch")["acc"]
    device_acc = evaluate_packed(packed, cfg, "torch", device=DEVICE)["acc"]
    assert device_acc == cpu_acc
