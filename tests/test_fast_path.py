"""The fast path trains the same network as the plain path: same losses step by step.

Every switch of the GPU path, exercised on the CPU by this suite (issue 21):

Switch -> test (in this file unless named):
- bf16 autocast (`trainer.precision=bf16-mixed`) -> test_bf16_autocast_stays_near_the_fp32_...
- channels-last (`speed.channels_last`) -> test_channels_last_follows_the_plain_loss_trajectory
- `torch.compile` (`speed.compile`; inductor's CPU backend, needs a C compiler) ->
  test_compiled_network_follows_the_plain_loss_trajectory
- channels-last with bf16 -> test_channels_last_and_bf16_together_stay_near_the_plain_...
- all three at once -> tests/test_gpu_path.py::test_whole_fast_path_stays_near_the_plain_path
  (marker `gpu`: `binwrn-gpucheck --cpu` runs that file on the CPU, tests/test_gpucheck.py)
- uint8 data augmented on the batch's device -> test_augmentation_creates_every_tensor_on_...
- `auto` resolution, bad values -> test_auto_switches_are_off_on_a_cpu_and_bad_values_refused
- DDP (gloo on the CPU) -> tests/test_ddp_equivalence.py, tests/test_ddp_end_to_end.py

Switches that cannot run on a CPU, and why:
- NCCL DDP: NCCL is a CUDA-only backend; the same DDP code runs under gloo above.
- `auto` picking bf16-mixed: it asks `torch.cuda.is_bf16_supported()` (a CUDA device property).
- TF32 arithmetic and cuDNN's convolution algorithms: CUDA-only kernels.
- measured matmul peak and CUDA memory figures of `make bench`: CUDA events and allocator.
`make gpu-check` (binwrn-gpucheck) runs these on a GPU.
"""

from __future__ import annotations

import pytest
import torch
from helpers_fast_path import train_losses
from omegaconf import OmegaConf

from binwrn.bench.measure import synthetic_images
from binwrn.data.augment import Augment
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError
from binwrn.train.fast_path import FastPath, resolve_precision

PLAIN = FastPath(channels_last=False, compile=False)


def test_channels_last_follows_the_plain_loss_trajectory():
    plain_losses, plain_weights = train_losses(PLAIN)
    fast_losses, fast_weights = train_losses(FastPath(channels_last=True, compile=False))
    assert len(plain_losses) == 5 and plain_losses[0] != plain_losses[-1]
    assert fast_losses == pytest.approx(plain_losses, rel=1e-4)
    for name, weight in plain_weights.items():
        # reduction order differs between layouts: agreement to float noise, not bit for bit
        assert torch.allclose(fast_weights[name], weight, rtol=1e-2, atol=1e-4), name


def test_bf16_autocast_stays_near_the_fp32_trajectory():
    plain_losses, _ = train_losses(PLAIN)
    bf16_losses, _ = train_losses(PLAIN, precision="bf16-mixed")
    assert bf16_losses != plain_losses  # autocast did change the arithmetic
    assert bf16_losses == pytest.approx(plain_losses, rel=0.05)  # bf16: ~3 significant digits


@pytest.mark.slow  # inductor generates and compiles C++ for forward and backward: ~40 s CPU
def test_compiled_network_follows_the_plain_loss_trajectory():
    plain_losses, _ = train_losses(PLAIN, steps=3)
    compiled_losses, weights = train_losses(FastPath(False, compile=True), steps=3)
    assert compiled_losses == pytest.approx(plain_losses, rel=1e-3)
    assert not any(k.startswith("_orig_mod") for k in weights)  # checkpoints stay loadable


def test_channels_last_and_bf16_together_stay_near_the_plain_trajectory():
    plain_losses, _ = train_losses(PLAIN)
    fast_losses, _ = train_losses(FastPath(True, False), precision="bf16-mixed")
    assert fast_losses == pytest.approx(plain_losses, rel=0.05)


def test_augmentation_creates_every_tensor_on_the_batch_device():
    """The uint8 batch is converted and augmented where it lands. On the `meta` device (a
    stand-in for cuda: same dispatch, no data) any tensor drawn on the CPU instead, a random
    pad, crop offset or cutout patch, makes the op refuse to mix devices."""
    data = DeviceAugmentedData(synthetic_images(100), synthetic_images(50), 50,
                               Augment(flip=True, pad=4, pad_fill="random", cutout=18),
                               layout=FastPath(True, False).images)
    (first, second) = data.augmented_train_batches(torch.device("meta"))
    assert first.device.type == "meta" and first.dtype == torch.float32
    assert first.shape == (50, 3, 32, 32) and second.shape == (50, 3, 32, 32)
    assert first.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match="device"):  # the stand-in does catch a CPU tensor
        torch.where(torch.ones(1, dtype=torch.bool, device="meta"), first, torch.zeros(1))


def test_auto_switches_are_off_on_a_cpu_and_bad_values_refused():
    speed = OmegaConf.create({"channels_last": "auto", "compile": "auto"})
    assert FastPath.from_config(speed, "cpu") == FastPath(False, False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("16-mixed", "gpu") == "16-mixed"
    with pytest.raises(ConfigError, match="speed.compile=sometimes"):
        FastPath.from_config(OmegaConf.create({"channels_last": True, "compile": "sometimes"}),
                             "cpu")
