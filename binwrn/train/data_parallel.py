"""The rules of data-parallel training (`trainer=ddp`, docs/scale-out.md); the configuration
package reads them from the config and refuses a setting that cannot work before Lightning
loads (binwrn/configuration/parallel.py).

`trainer.devices` processes on each of `trainer.num_nodes` machines train one model in
lockstep (Lightning DDP: NCCL between GPUs, gloo between CPU processes). What one optimizer
step sees is `data.batch_rule`:

- `global` (default; the paper's training on any number of devices): `data.batch_size` images
  per step in all, split across the devices (125 on 2 devices: 63 + 62). Each device's loss is
  weighted by its share of the step, so the averaged gradient is exactly the gradient of the
  mean loss over the 125 images; the learning rate is unchanged. With
  `trainer.sync_batchnorm=true` (the default of `trainer=ddp`) BN normalises every step with
  the statistics of all 125 images, as on the paper's single GPU: such a config trains the
  one-device net and hashes as its one-device twin.
- `per_device`: `data.batch_size` images on every device, devices x as many per step (fewer
  steps per epoch), and the whole learning-rate schedule times the number of devices (the
  linear scaling rule of Goyal et al. 2017). Not the paper's training.
"""

from __future__ import annotations

BATCH_RULES = ("global", "per_device")  # data.batch_rule, as above
DDP = "ddp"  # the one multi-process strategy binwrn runs (train/ddp.py or the cluster starts
# its processes, train/cluster.py)


def shard_loss_weight(images_here: int, world: int, images_per_step: int) -> float:
    """Factor on this device's mean loss so that DDP's average of the devices' gradients is
    the gradient of the mean loss over the whole step, also when the step does not split
    evenly (125 = 63 + 62): (1/world) sum_r (n_r world / B) mean_r = (1/B) sum of losses."""
    return images_here * world / images_per_step
