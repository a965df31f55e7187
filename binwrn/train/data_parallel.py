"""The rules of data-parallel training (`trainer=ddp`), read from the config before Lightning
loads, so that a setting that cannot work is refused in one sentence (docs/scale-out.md).

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

from omegaconf import DictConfig, ListConfig, OmegaConf

from binwrn.errors import ConfigError

BATCH_RULES = ("global", "per_device")
DDP = "ddp"  # the one multi-process strategy binwrn runs (train/ddp.py or the cluster starts
# its processes, train/cluster.py)
# Keys that only say how the work is spread; left out of the config hash while the config
# trains the one-device net (binwrn.config.config_hash).
SPREAD_KEYS = ("trainer.strategy", "trainer.num_nodes", "trainer.sync_batchnorm",
               "data.batch_rule")


def devices_per_node(trainer: DictConfig) -> int:
    """Processes on each machine: `trainer.devices` (a count or a list of device ids)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, ListConfig | list) and devices and all(
            isinstance(d, int) and not isinstance(d, bool) for d in devices):
        return len(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        return devices
    raise ConfigError(f"trainer.devices={devices} is not allowed: give how many devices to "
                      "train on (1 or more, e.g. trainer.devices=4) or a list of device ids.")


def world_size(trainer: DictConfig) -> int:
    """Processes that train together: `trainer.devices` on each of `trainer.num_nodes`
    machines (several machines: started by the cluster, train/cluster.py)."""
    nodes = trainer.get("num_nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigError(f"trainer.num_nodes={nodes} is not allowed: give how many machines "
                          "train together (1 or more).")
    return nodes * devices_per_node(trainer)


def batch_rule(cfg: DictConfig) -> str:
    rule = OmegaConf.select(cfg, "data.batch_rule", default="global")
    if rule not in BATCH_RULES:
        raise ConfigError(f"data.batch_rule={rule} is unknown: use global (the paper's "
                          "batch over all devices) or per_device.")
    return rule


def step_batch(cfg: DictConfig) -> int:
    """Images in one optimizer step, over all devices."""
    world = world_size(cfg.trainer)
    return cfg.data.batch_size * (world if batch_rule(cfg) == "per_device" else 1)


def lr_factor(cfg: DictConfig) -> int:
    """What the learning-rate schedule is multiplied by: the linear rule of `per_device`."""
    return world_size(cfg.trainer) if batch_rule(cfg) == "per_device" else 1


def trains_like_one_device(cfg: DictConfig) -> bool:
    """True when the config trains what one device would: the same steps, gradients and BN
    statistics, however many devices share the work."""
    if world_size(cfg.trainer) == 1:
        return True
    synced = bool(OmegaConf.select(cfg, "trainer.sync_batchnorm", default=False))
    return batch_rule(cfg) == "global" and synced


def check_data_parallel(cfg: DictConfig, train_images: int, test_images: int) -> None:
    """Refuse a device count, strategy or batch that cannot be spread as asked."""
    world = world_size(cfg.trainer)
    strategy = OmegaConf.select(cfg, "trainer.strategy", default="auto")
    if world > 1 and strategy != DDP:
        nodes = cfg.trainer.get("num_nodes", 1)
        asked = (f"trainer.num_nodes={nodes}" if nodes != 1
                 else f"trainer.devices={cfg.trainer.devices}")
        raise ConfigError(f"{asked} needs binwrn's data-parallel trainer "
                          f"(trainer.strategy={strategy} is not it): add trainer=ddp.")
    batch = cfg.data.batch_size
    if batch_rule(cfg) == "global" and batch < world:
        raise ConfigError(f"data.batch_size={batch} cannot be split over {world} devices: "
                          f"use at least {world} (one image per device), or fewer devices.")
    if step_batch(cfg) > train_images:
        raise ConfigError(f"data.batch_rule=per_device takes {batch} x {world} images per "
                          f"step, more than the {train_images} training images: lower "
                          "data.batch_size or use data.batch_rule=global.")
    if test_images < world:
        raise ConfigError(f"The {test_images} test images cannot give each of {world} devices "
                          "one: raise data.test_limit or use fewer devices.")


def shard_loss_weight(images_here: int, world: int, images_per_step: int) -> float:
    """Factor on this device's mean loss so that DDP's average of the devices' gradients is
    the gradient of the mean loss over the whole step, also when the step does not split
    evenly (125 = 63 + 62): (1/world) sum_r (n_r world / B) mean_r = (1/B) sum of losses."""
    return images_here * world / images_per_step
