"""Config checks that answer before torch, Lightning or MLflow load.

`check_config` is the one check of a job's config: binwrn-run makes it once per job, on the
config its Hydra app composed, before Hydra makes the job's folder (binwrn/cli.py);
`binwrn.configuration.prepare` makes it for the other entry points, so every one gets the
same sentences. `check_command_line` checks the keys and options of every job of a
`binwrn-run -m` up front (their values are each job's own check).

The allowed values and model rules that the models, data and training code enforce too have
one home each, without torch: binwrn/models/rules.py, binwrn/data/rules.py,
binwrn/train/rules.py and binwrn/train/data_parallel.py; this module reads them there.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from binwrn.configuration.compose import close_matches, compose, job_overrides
from binwrn.data.rules import DECODERS, PAD_FILLS, POSITIONS, TRAIN_CROPS
from binwrn.errors import BinwrnError, ConfigError, as_yaml, not_allowed
from binwrn.models.rules import (
    GRADS,
    INITS,
    MOST,
    NAMED_ORDERS,
    NORMS,
    SCALES,
    blocks_per_stage,
    check_norm,
    check_resnet18_depth,
    check_resnet21_depth,
    check_resnet_depth,
    check_vgg_depth,
    check_wrn_width,
    first_stage_width,
    is_number,
    is_whole,
)
from binwrn.train.data_parallel import BATCH_RULES
from binwrn.train.rules import DECAY_SCOPES, OPTIMIZERS, SCHEDULES

# Lightning's trainer.precision values (as text: 32 and "32" are the same), and binwrn's auto
PRECISIONS = ("auto", "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed",
              "bf16-true", "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
DATASETS = ("cifar10", "cifar100", "svhn", "imagenet", "imagenet32", "mnist", "digits")
NETS = tuple(f"binwrn.models.{net}" for net in  # conf/model/*.yaml's _target_
             ("WideResNet", "WideResNet18", "CifarResNet", "ResNet21", "VGG", "MLP"))

# --- value rules: each returns None for a good value, else what to use instead ----------


def whole(low: int, optional: bool = False, high: int = MOST) -> Callable[[object], str | None]:
    def rule(value: object) -> str | None:
        if (optional and value is None) or (is_whole(value) and low <= value <= high):
            return None
        return f"a whole number from {low} to {high:,}" + (" (or null)" if optional else "")
    return rule


def text(most: int) -> Callable[[object], str | None]:
    """A non-empty text of at most `most` characters (a run label becomes a folder name,
    which the file system caps at 255 bytes; MLflow caps experiment names at 500)."""
    def rule(value: object) -> str | None:
        if isinstance(value, str) and 0 < len(value) <= most:
            return None
        return f"a non-empty text of at most {most:,} characters"
    return rule


def optional_text(value: object) -> str | None:
    return None if value is None or isinstance(value, str) else "a text (or null)"


def numbers(value: object) -> str | None:
    if isinstance(value, ListConfig | list) and value and all(is_number(v) for v in value):
        return None
    return "a list of numbers, e.g. [0.49, 0.48, 0.45]"


def number(low: float, high: float | None = None, low_open: bool = False,
           high_open: bool = True, optional: bool = False) -> Callable[[object], str | None]:
    def rule(value: object) -> str | None:
        if optional and value is None:
            return None
        if is_number(value) and (value > low if low_open else value >= low) \
                and (high is None or (value < high if high_open else value <= high)):
            return None
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        upper = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        return f"a number {bound}{upper}" + (" (or null)" if optional else "")
    return rule


def one_of(*choices: object) -> Callable[[object], str | None]:
    def rule(value: object) -> str | None:
        if any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
            return None
        words = isinstance(value, str) and all(isinstance(c, str) for c in choices)
        near = close_matches(value, list(choices), n=1) if words else []
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"one of {', '.join(map(as_yaml, choices))}{hint}"
    return rule


def switch(value: object) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def limit(value: object) -> str | None:
    """Lightning's limit_*_batches: a count of batches or a fraction of them."""
    if value is None or (is_whole(value) and value >= 0) or (
            is_number(value) and 0.0 <= value <= 1.0):
        return None
    return "a whole number of batches >= 0, a fraction from 0.0 to 1.0, or null"


def whole_list(value: object) -> str | None:
    if isinstance(value, ListConfig | list) and value and len(value) <= 1000 and all(
            is_whole(v) and 1 <= v <= MOST for v in value):
        return None
    return "a list of at most 1,000 whole numbers from 1 to 2,147,483,647, e.g. [85, 170]"


def betas(value: object) -> str | None:
    if isinstance(value, ListConfig | list) and len(value) == 2 and all(
            is_number(b) and 0.0 <= b < 1.0 for b in value):
        return None
    return "two numbers in [0, 1), e.g. [0.9, 0.999]"


def order(value: object) -> str | None:
    if isinstance(value, ListConfig | list):
        return None  # layer names: checked against the built net (models/layer_order.py)
    advice = one_of(*NAMED_ORDERS)(value)
    return advice and f"{advice}, or a list of layer names"


def precision(value: object) -> str | None:
    return None if str(value) in PRECISIONS else one_of(*PRECISIONS)(str(value))


def workers(value: object) -> str | None:
    return None if value == "auto" or (is_whole(value) and value >= 0) else \
        "auto or a whole number >= 0 of loader processes"


def auto_switch(value: object) -> str | None:
    return None if value == "auto" or isinstance(value, bool) else "auto, true or false"


RULES: dict[str, Callable[[object], str | None]] = {
    "seed": whole(0, high=2**32 - 1),  # NumPy's and Lightning's seeds are 32-bit
    "deterministic": switch,
    "resume": switch,
    "verbose": switch,
    "checkpoints.keep_cycle_ends": whole(0),
    "speed.channels_last": auto_switch,
    "speed.compile": auto_switch,
    "iterative.order": order,
    "iterative.epochs_per_layer": whole(1),
    "data.download": switch,
    "data.verify_checksums": switch,
    "data.batch_size": whole(2),
    "data.batch_rule": one_of(*BATCH_RULES),
    "data.eval_batch_size": whole(1),
    "data.flip": switch,
    "data.pad": whole(0, high=1024),
    "data.pad_fill": one_of(*PAD_FILLS),
    "data.cutout": whole(0, high=4096),
    "data.train_limit": whole(1, optional=True),
    "data.test_limit": whole(1, optional=True),
    "data.val_size": whole(0),
    "dataset.name": one_of(*DATASETS),
    "dataset.num_classes": whole(2, high=1_000_000),
    "dataset.image_size": whole(1, high=4096),
    "dataset.channels": whole(1, high=4096),
    "dataset.mean": numbers,
    "dataset.std": numbers,
    "dataset.workers": workers,
    "dataset.train_crop": one_of(*TRAIN_CROPS),
    "dataset.multi_crop_positions": one_of(*POSITIONS),
    "dataset.decoder": one_of(*DECODERS),
    "model._target_": one_of(*NETS),
    "model.label": text(100),
    "model.num_classes": whole(2, high=1_000_000),
    "model.in_channels": whole(1, high=4096),
    "model.image_size": whole(1, high=4096),
    "model.bn_affine": switch,
    "model.final_bn_affine": switch,
    "model.skip": switch,
    "model.init_gain": number(0.0, low_open=True),
    "model.bits": one_of(1, 32),
    "model.scale": one_of(*SCALES),
    "model.grad": one_of(*GRADS),
    "model.init": one_of(*INITS),
    "model.norm": one_of(*NORMS),
    "model.first_last_fp32": switch,
    "model.input_relu": switch,
    "model.hidden": whole_list,
    "bn.learn_affine": switch,
    "bn.momentum": number(0.0, 1.0, low_open=True, high_open=False, optional=True),
    "bn.recompute_stats": switch,
    "bn.recompute_batches": whole(1, optional=True),
    "schedule.name": one_of(*SCHEDULES),
    "schedule.per_batch": switch,
    "schedule.lr_min": number(0.0),
    "schedule.first_cycle": whole(1),
    "schedule.cycle_mult": whole(1),
    "schedule.milestones": whole_list,
    "schedule.factor": number(0.0, low_open=True),
    "schedule.epochs": whole(1),
    "optim.name": one_of(*OPTIMIZERS),
    "optim.lr": number(0.0, low_open=True),
    "optim.momentum": number(0.0, 1.0),
    "optim.nesterov": switch,
    "optim.weight_decay": number(0.0),
    "optim.decay_scope": one_of(*DECAY_SCOPES),
    "optim.betas": betas,
    "optim.eps": number(0.0, low_open=True),
    "optim.reset_momentum_at_restart": switch,
    "trainer.max_epochs": whole(1, high=100_000),  # the papers: 254 at most
    "trainer.accelerator": one_of(*ACCELERATORS),
    "trainer.precision": precision,
    "trainer.check_val_every_n_epoch": whole(1),
    "trainer.limit_train_batches": limit,
    "trainer.limit_val_batches": limit,
    "trainer.limit_test_batches": limit,
    "trainer.tf32": switch,
    "trainer.num_sanity_val_steps": whole(0),
    "trainer.enable_model_summary": switch,
    "trainer.enable_checkpointing": switch,
    "data.root": optional_text,
    "data.cache_dir": optional_text,
    "tracking.uri": text(10_000),
    "tracking.artifact_root": text(4096),
    "tracking.experiment": text(500),
    "tracking.log_checkpoint": switch,
    "tracking.system_metrics_interval": number(0.0),
}


def _model_rules(model: DictConfig) -> None:
    """Depth, width and norm as the chosen net (model._target_) builds them: the rules its
    constructor enforces, read from binwrn/models/rules.py."""
    target = str(model.get("_target_", "")).rsplit(".", 1)[-1]
    depth, width = model.get("depth"), model.get("width")
    if target == "WideResNet":
        blocks_per_stage(depth)
        check_wrn_width(width)
    elif target == "CifarResNet":
        check_resnet_depth(depth)
    elif target == "ResNet21":
        check_resnet21_depth(depth)
    elif target == "VGG":
        check_vgg_depth(depth)
    elif target == "WideResNet18":
        check_resnet18_depth(depth)
        first_stage_width(width)
    check_norm(model.get("norm", "batchnorm"), model.get("temperature"),
               model.get("final_bn_affine", False))


def check_config(cfg: DictConfig) -> None:
    """Every value the config alone decides, and whether its data is there; raises
    ConfigError or DataError with one sentence. Imports neither torch nor MLflow."""
    from binwrn.data.sources import check_present

    check_values(cfg)
    d = cfg.data
    check_present(cfg.dataset.name, d.root, d.download, cfg.dataset.get("use_extra", False),
                  streaming=cfg.dataset.get("streaming", False))


def _resolves(cfg: DictConfig) -> None:
    """Every ${...} of `cfg` resolves (a user's `model.depth=${x}`, a list where a lookup
    needs a name); else one sentence naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        first = str(err).splitlines()[0].strip()
        where = f"{key} " if key else "A setting "
        raise ConfigError(f"{where}cannot be resolved ({first[:200]}): fix or drop the "
                          "override that sets it.") from None


def _net_size(model: DictConfig) -> None:
    """A net too large to train is refused before anything is allocated."""
    from binwrn.configuration.net_size import (
        MAX_WEIGHTS,
        mlp_weights,
        resnet18_weights,
        wrn_weights,
    )

    target = str(model.get("_target_", "")).rsplit(".", 1)[-1]
    channels, classes = model.get("in_channels", 3), model.get("num_classes", 10)
    if target == "WideResNet":
        count = wrn_weights(model.depth, model.width, channels, classes)
    elif target == "WideResNet18":
        count = resnet18_weights(model.width, channels, classes)
    elif target == "MLP":
        count = mlp_weights(list(model.hidden), channels * model.image_size ** 2, classes)
    else:
        return  # paper 3's VGG and ResNet-20 have fixed widths
    if count > MAX_WEIGHTS:
        raise ConfigError(
            f"model.depth={model.get('depth')} model.width={model.get('width')} with "
            f"{classes:,} classes would make a net of about {count:,} weights ({count * 4:,} "
            f"bytes in fp32), more than the {MAX_WEIGHTS:,} binwrn-run trains: use a smaller "
            "model.width, model.depth or model.hidden.")


def check_values(cfg: DictConfig, only: tuple[str, ...] | None = None) -> None:
    """The values of `cfg` against RULES, the net's depth, width and size, the device count
    and the tracking URI's scheme (ConfigError). `only`: the RULES under these prefixes and
    nothing else (binwrn-eval, whose net comes from its file, checks `data.` and `dataset.`)."""
    from binwrn.configuration.parallel import batch_rule, world_size
    from binwrn.tracking.store import absolute_uri

    _resolves(cfg)
    for key, rule in RULES.items():
        if only is not None and not key.startswith(only):
            continue
        value = OmegaConf.select(cfg, key, default="__absent__")
        if value != "__absent__":
            advice = rule(value)
            if advice:
                raise not_allowed(key, value, advice)
    if only is not None:
        return
    _model_rules(cfg.model)
    _net_size(cfg.model)
    world_size(cfg.trainer)
    batch_rule(cfg)
    absolute_uri(cfg.tracking.uri)


def check_command_line(overrides: list[str], multirun: bool, values: bool = True) -> None:
    """Compose every job of `binwrn-run [-m] overrides` and, with `values`, check it;
    raises the first job's problem."""
    jobs = job_overrides(overrides, multirun)
    shared = set.intersection(*(set(job) for job in jobs))
    for number, job in enumerate(jobs):
        try:
            cfg = compose(job)
            if values:
                check_config(cfg)
        except BinwrnError as err:
            if len(jobs) == 1:
                raise
            own = " ".join(o for o in job if o not in shared)
            raise type(err)(f"job {number} ({own}): {err}") from None
