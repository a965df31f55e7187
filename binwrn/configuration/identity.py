"""A run's identity, read from its config: name, config hash, curated params, the network key.

The hash is what resume and sweep skipping match finished and unfinished runs by: its rules
(which keys count, and the values that leave a key out so that older configs keep their hash)
live here alone. Nothing here builds a model or reads data.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from binwrn.configuration.parallel import SPREAD_KEYS, trains_like_one_device, world_size

# The flat view shown as MLflow params (filterable in the UI); the full tree is an artifact.
CURATED_PARAMS = (
    "dataset.name", "model.depth", "model.width", "model.bits", "bn.learn_affine",
    "schedule.name", "trainer.max_epochs", "optim.lr", "data.cutout",
    "model.first_last_fp32", "model.scale", "model.grad", "model.input_relu",
    "model.norm", "model.temperature",
    "optim.weight_decay", "optim.momentum", "optim.nesterov", "optim.reset_momentum_at_restart",
    "schedule.lr_min", "schedule.milestones", "bn.recompute_stats", "bn.momentum",
    "data.batch_size", "data.pad", "data.pad_fill", "data.flip", "data.train_limit",
    "data.test_limit", "seed", "deterministic", "trainer.precision",
    "iterative.order", "iterative.epochs_per_layer", "iterative.ranking", "iterative.layer",
    "model.hidden", "model.init", "optim.name", "optim.decay_scope", "optim.betas",
    "data.val_size",
    "dataset.use_extra",  # SVHN's configs only: absent keys are not logged
    "trainer.tf32", "model.final_bn_affine", "model.skip", "model.init_gain",
    "schedule.per_batch",
)
# Keys that change where things are stored or how fast, not what is trained.
HASH_EXCLUDED = ("tracking", "verbose", "data.root", "data.cache_dir", "data.download",
                 "data.verify_checksums", "data.eval_batch_size", "trainer.accelerator",
                 "trainer.devices", "resume", "checkpoints", "speed", "sweep.name",
                 "sweep.parent_run_id", "sweep.job", "sweep.smoke",
                 "dataset.workers", "dataset.decoder",  # ImageNet loader: speed only
                 "norms",  # the table model.input_relu and model.temperature read: in model.*
                 # extra test points on a copy of the BN state: the training is unchanged
                 "bn.recomputed_test_epochs",
                 "model.label",  # the net's name in run names and folders
                 # read by paper 3's nets as model.input_mean/std (hashed there); the WRN's
                 # input BN normalises instead
                 "dataset.mean", "dataset.std")
# Keys paper 2 added, left out while they hold paper 1's value, so that a paper-1 config keeps
# the hash it had before them: its finished runs are still skipped, its runs still resume.
# Keys paper 3 added; their curated params also show only where they differ from paper 1.
PAPER3_KEYS = {"optim.name": "sgd", "optim.decay_scope": "weights", "data.val_size": 0}
# Keys of the fidelity issue (16): TF32, Appendix B's plain net, two implementation
# ablations. (Its default precision 32-true did change the default hash: `auto` had bf16 on
# GPUs; trainer.precision=auto keeps the hash stored runs carry.)
FIDELITY_KEYS = {"trainer.tf32": False, "model.final_bn_affine": False, "model.skip": True,
                 "model.init_gain": 2.0, "schedule.per_batch": True}
PAPER1_VALUES = {"model.norm": "batchnorm", "model.temperature": None,
                 "dataset.channels": 3,  # added with MNIST's single channel
                 "iterative.layer": None,  # added after the other iterative.* keys
                 **PAPER3_KEYS, **FIDELITY_KEYS}
# Shown as params only where they differ from paper 1: older runs' params stay as they were.
QUIET_PARAMS = {**PAPER3_KEYS, **FIDELITY_KEYS}
# Groups paper 3 added, left out in the same way while their switch holds paper 1's value:
# with iterative.order=none the other iterative.* keys have no effect.
PAPER1_GROUPS = {"iterative": ("order", "none")}


# Params left out where unset: a BN net has no temperature (paper 2's shifted-ReLU nets do).
UNSET_HIDDEN = ("model.temperature",)


def curated_params(cfg: DictConfig) -> dict[str, object]:
    # A paper-1 run (iterative.order=none, SGD, ...) shows the params it showed before paper 3.
    paper1 = OmegaConf.select(cfg, "iterative.order", default="none") == "none"
    keys = [k for k in CURATED_PARAMS if not (paper1 and k.startswith("iterative."))]
    values = {key: OmegaConf.select(cfg, key, default="__absent__") for key in keys}
    return {k: (list(v) if OmegaConf.is_list(v) else v) for k, v in values.items()
            if v != "__absent__" and not (k in QUIET_PARAMS and v == QUIET_PARAMS[k])
            and not (k in UNSET_HIDDEN and v is None)}


def _parent(tree: dict, dotted: str) -> dict:
    """The dict holding the last part of a dotted key ({} where a part is missing)."""
    for part in dotted.split(".")[:-1]:
        tree = tree.get(part, {})
    return tree


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved config minus storage/speed keys: equal hash, same experiment."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    for dotted in HASH_EXCLUDED:
        _parent(tree, dotted).pop(dotted.rsplit(".", 1)[-1], None)
    # How the work is spread over devices is not what is trained while DDP trains the
    # one-device net (train/data_parallel.py): its finished runs count on any device count
    # and its unfinished ones resume on any. Otherwise the device count is part of it.
    if trains_like_one_device(cfg):
        for dotted in SPREAD_KEYS:
            _parent(tree, dotted).pop(dotted.rsplit(".", 1)[-1], None)
    else:
        tree["trainer"]["world_size"] = world_size(cfg.trainer)
        # The processes, not the machines they run on, make the net: 2 nodes x 2 devices is
        # 1 x 4. num_nodes stays in the tree as the 1 that runs from before several nodes hash.
        if "num_nodes" in tree["trainer"]:
            tree["trainer"]["num_nodes"] = 1
    for dotted, paper1_value in PAPER1_VALUES.items():
        parent, leaf = _parent(tree, dotted), dotted.rsplit(".", 1)[-1]
        if leaf in parent and parent[leaf] == paper1_value:
            del parent[leaf]
    for group, (switch, paper1_value) in PAPER1_GROUPS.items():
        if tree.get(group, {}).get(switch, paper1_value) == paper1_value:
            tree.pop(group, None)
    model = tree.get("model", {})
    if isinstance(model.get("temperature"), int) and not isinstance(model["temperature"], bool):
        model["temperature"] = float(model["temperature"])  # T=40 (a sweep's) is T=40.0
    if tree.get("sweep", {}).get("stands_for") is None:
        tree.pop("sweep", None)  # a plain run: the same hash as before sweeps existed
    blob = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def net_name(model: DictConfig) -> str:
    """wrn20-10, vgg5, resnet20, mlp300-100: the model's label (a config from before labels is
    a WRN), with an MLP's hidden widths."""
    label = model.get("label") or f"wrn{model.depth}-{model.width}"
    hidden = model.get("hidden")
    return label + "-".join(str(h) for h in hidden) if hidden else label


def run_name(cfg: DictConfig) -> str:
    bits = "1bit" if cfg.model.bits == 1 else f"fp{cfg.model.bits}"
    if "width" not in cfg.model:  # paper 3's nets; the WRNs (CIFAR, ImageNet) are named below
        order = OmegaConf.select(cfg, "iterative.order", default="none")
        order = "" if order == "none" else f"-{order if isinstance(order, str) else 'list'}"
        if order == "-single":
            order += f"-{cfg.iterative.layer}"
        return (f"{cfg.dataset.name}-{net_name(cfg.model)}-{bits}-"
                f"{cfg.optim.get('name', 'sgd')}-{cfg.schedule.name}{order}")
    affine = "bn-affine" if cfg.bn.learn_affine else "bn-fixed"
    if cfg.model.get("norm", "batchnorm") == "shifted_relu":
        affine = f"srelu-T{cfg.model.temperature:g}"  # no internal BN to be affine or not
    cut = f"-cutout{cfg.data.cutout}" if cfg.data.cutout else ""
    return (f"{cfg.dataset.name}-{net_name(cfg.model)}-{bits}-"
            f"{cfg.schedule.name}-{affine}{cut}")


def network_key(cfg: DictConfig) -> str:
    """What a sensitivity ranking belongs to (data set, net, binarizer, smoke or not): tagged
    on every run, and what `iterative.ranking=store` looks for."""
    smoke = "-smoke" if OmegaConf.select(cfg, "sweep.smoke", default=False) else ""
    return (f"{cfg.dataset.name}-{net_name(cfg.model)}-scale_{cfg.model.get('scale', 'he')}"
            f"{smoke}")


def sweep_tags(cfg: DictConfig) -> dict[str, str]:
    """Tags that nest a sweep's job under the sweep's parent run in the MLflow UI."""
    s = cfg.sweep
    if not s.parent_run_id:
        return {}
    return {"mlflow.parentRunId": s.parent_run_id, "binwrn.sweep": s.name,
            "binwrn.sweep_job": s.job, "binwrn.smoke": str(bool(s.smoke)).lower()}
