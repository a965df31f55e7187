"""What each section of the check runs, and its time limit: the H100 sizes and the CPU ones.

Time estimates for one H100 (assuming a bf16 dense
matmul peak of ~790 TFLOP/s, 80 % of the SXM datasheet's 989), from
FLOPs: a WRN-20-10 forward pass is 8.03 GFLOP per 32x32 image (binwrn.bench.flops), a
training step 3x that, so one CIFAR-10 epoch (50,000 images) is 1.2 PFLOP.
- environment: two 8192^3 matmul loops (~25 TFLOP each, < 1 s) plus imports: ~10 s.
- gpu tests: tiny WRN-8-1 trainings (seconds) and two inductor compiles: ~60 s.
- speed: 4 eager cases of 25 steps (75 TFLOP each: < 1 s at 150 TFLOP/s) plus Trainer
  set-up (~3 s each), then one compiled case (compile of WRN-20-10, ~30-60 s): ~75 s. Rows
  are kept as each case ends, so a compile that overruns loses its own row only.
- accuracy: 14 epochs = 16.9 PFLOP; at 275 TFLOP/s (35 % of the bf16 peak) 61 s, at 120
  TFLOP/s (15 %) 140 s; plus 14 test passes (1.1 PFLOP), three BN recomputes (1.2 PFLOP),
  decoding 60,000 PNGs (8 processes), imports, MLflow, export and the file's evaluation
  (~40 s): 100-190 s.
The limits below add to 460 s; with 20 s for the parent process (imports, nvidia-smi, the
table) an H100 runs the whole check in under 8 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The official Keras curve (spec 1.6): test accuracy % of 1-bit WRN-20-10 with cutout on
# CIFAR-10 after the SGDR cycles ending at epochs 2, 6 and 14.
KERAS_CURVE = {2: 73.62, 6: 86.27, 14: 91.46}
TOLERANCE_POINTS = 1.5


@dataclass(frozen=True)
class Profile:
    name: str                       # "gpu" or "cpu-shrunk": the verdict of a CPU row
    device: str                     # "cuda" or "cpu"
    speed_net: tuple[int, int]      # (depth, width)
    speed_batch: int
    speed_steps: int
    speed_warmup: int
    epoch_images: int               # images of one epoch, for the epoch time
    accuracy_overrides: tuple[str, ...]
    cycle_ends: tuple[int, ...]     # epochs after which the SGDR cycles end
    reference: dict[int, float] = field(default_factory=dict)
    limits_s: dict[str, int] = field(default_factory=dict)

    @property
    def shrunk(self) -> bool:
        return self.name != "gpu"


GPU = Profile(
    name="gpu", device="cuda", speed_net=(20, 10), speed_batch=125, speed_steps=20,
    speed_warmup=5, epoch_images=50_000,
    # The accuracy run uses bf16 autocast (the fast path's arithmetic, a documented switch)
    # so 14 epochs fit the budget; eager, as compiling costs more than it saves in 14 epochs.
    accuracy_overrides=("experiment=p1_t1_1bit_20-10", "dataset=cifar10",
                        "trainer.max_epochs=14", "trainer.accelerator=gpu",
                        "trainer.precision=bf16-mixed", "speed.compile=false",
                        "checkpoints.keep_cycle_ends=3", "tracking.log_checkpoint=false"),
    cycle_ends=(2, 6, 14), reference=KERAS_CURVE,
    limits_s={"environment": 20, "gpu_tests": 90, "speed": 100, "accuracy": 250},
)

CPU = Profile(
    name="cpu-shrunk", device="cpu", speed_net=(8, 1), speed_batch=50, speed_steps=3,
    speed_warmup=1, epoch_images=300,
    accuracy_overrides=("experiment=smoke", "dataset=digits", "data.train_limit=1000",
                        "trainer.max_epochs=3",
                        "schedule.first_cycle=1", "trainer.accelerator=cpu",
                        "checkpoints.keep_cycle_ends=2", "tracking.log_checkpoint=false"),
    cycle_ends=(1, 3),
    # Generous: a shrunk run proves the path, not a time; a shared 2-core CPU is slow.
    limits_s={"environment": 120, "gpu_tests": 900, "speed": 600, "accuracy": 600},
)
