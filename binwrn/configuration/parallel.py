"""The data-parallel settings read from the config (`trainer=ddp`, docs/scale-out.md): device
and process counts, the batch rule, and the refusals of settings that cannot work, before
Lightning loads. What the rules mean for training is in binwrn/train/data_parallel.py.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, ListConfig, OmegaConf

from binwrn.errors import ConfigError
from binwrn.train.data_parallel import BATCH_RULES, DDP

# Keys that only say how the work is spread; left out of the config hash while the config
# trains the one-device net (identity.config_hash).
SPREAD_KEYS = ("trainer.strategy", "trainer.num_nodes", "trainer.sync_batchnorm",
               "data.batch_rule")
# Node-local paths: nodes may mount the data or the cache elsewhere.
_NODE_LOCAL_KEYS = ("data.root", "data.cache_dir")


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


def uses_ddp(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "trainer.strategy", default=None) == DDP


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


def check_launch(cfg: DictConfig, launched) -> None:
    """Refuse, in one sentence and before Lightning runs, a config that does not match the
    processes the cluster started (`launched`, train/cluster.py; or several nodes where
    nothing started them)."""
    nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
    ddp = uses_ddp(cfg)
    if launched is None:
        if ddp and nodes != 1:
            raise ConfigError(
                f"trainer.num_nodes={nodes} needs one binwrn-run process per device on every "
                "node, started by the cluster: run the command under srun or torchrun "
                "(docs/scale-out.md), or train on one machine with trainer.num_nodes=1.")
        return
    asked = f"trainer.num_nodes={launched.nodes} trainer.devices={launched.per_node}"
    if not ddp:
        raise ConfigError(
            f"{launched.kind} started {launched.world} binwrn-run processes, but this config "
            f"trains on one device: add trainer=ddp {asked}, or start one process.")
    devices = devices_per_node(cfg.trainer)
    if (nodes, devices) != (launched.nodes, launched.per_node):
        raise ConfigError(
            f"{launched.kind} started {launched.nodes} node(s) x {launched.per_node} "
            f"process(es), but the config asks for trainer.num_nodes={nodes} x "
            f"trainer.devices={devices}: set {asked} (one process per device).")


def config_digest(cfg: DictConfig) -> str:
    """What the ranks a cluster started compare (train/cluster.py `agree_on_config`): the
    resolved config, node-local paths aside."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    for dotted in _NODE_LOCAL_KEYS:
        parent, leaf = dotted.split(".")
        tree.get(parent, {}).pop(leaf, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()
