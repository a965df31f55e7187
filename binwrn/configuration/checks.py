"""Config checks that answer before torch, Lightning or MLflow load (seconds on 2 cores).

`check_command_line` is what `binwrn-run` does first: it composes every job of the command
line, turns an unknown key or group option into one sentence with a "did you mean" (difflib
over the composed keys and the options in conf/), then `check_config` checks each job.
`check_config` is also the first thing `binwrn.configuration.prepare` does, so every entry point
gets the same sentences.

The models, schedules and data readers keep their own checks (they are libraries, called
from tests and the exporter too); the value lists below are theirs, copied because importing
them would import torch, and tests/test_checks.py holds both copies equal.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from binwrn.errors import BinwrnError, ConfigError

# Allowed values of settings whose code lives in torch-importing modules (see the test).
SCALES = ("he", "mean_abs", "mean_abs_channel", "none")  # models/binary.py
GRADS = ("pass_through", "alpha_scaled")  # models/binary.py
INITS = ("he", "torch")  # models/binary.py
NORMS = ("batchnorm", "shifted_relu")  # models/wrn.py
PAD_FILLS = ("random", "zero", "reflect")  # data/augment.py
NAMED_ORDERS = ("none", "forward", "reverse", "random", "random_official", "ascend", "descend",
                "single", "ascend_official", "descend_official")
SCHEDULES = ("sgdr", "step", "cosine", "constant")  # train/schedules.py
OPTIMIZERS = ("sgd", "adam")  # train/optimizers.py
DECAY_SCOPES = ("weights", "all")
TRAIN_CROPS = ("scale_jitter", "random_resized")  # data/imagenet_transforms.py
POSITIONS = ("random", "corners_center")
DECODERS = ("pil",)  # data/imagenet_transforms.py: Pillow; torchvision's decoders are deprecated
# Lightning's trainer.precision values (as text: 32 and "32" are the same), and binwrn's auto
PRECISIONS = ("auto", "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed",
              "bf16-true", "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
DATASETS = ("cifar10", "cifar100", "svhn", "imagenet", "imagenet32", "mnist", "digits")
NETS = tuple(f"binwrn.models.{net}" for net in  # conf/model/*.yaml's _target_
             ("WideResNet", "WideResNet18", "CifarResNet", "ResNet21", "VGG", "MLP"))

# --- value rules: each returns None for a good value, else what to use instead ----------


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


# Whole numbers without a tighter bound of their own stop here: a count past it is a typo,
# and every loop or allocation it drives stays bounded (issue 27: max_epochs=10^8 hung).
MOST = 2**31 - 1


def whole(low: int, optional: bool = False, high: int = MOST) -> Callable[[object], str | None]:
    def rule(value: object) -> str | None:
        if (optional and value is None) or (_is_whole(value) and low <= value <= high):
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
    if isinstance(value, ListConfig | list) and value and all(_is_number(v) for v in value):
        return None
    return "a list of numbers, e.g. [0.49, 0.48, 0.45]"


def number(low: float, high: float | None = None, low_open: bool = False,
           high_open: bool = True, optional: bool = False) -> Callable[[object], str | None]:
    def rule(value: object) -> str | None:
        if optional and value is None:
            return None
        if _is_number(value) and (value > low if low_open else value >= low) \
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
        near = _close(value, list(choices), n=1) if words else []
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"one of {', '.join(map(_yaml, choices))}{hint}"
    return rule


def switch(value: object) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def limit(value: object) -> str | None:
    """Lightning's limit_*_batches: a count of batches or a fraction of them."""
    if value is None or (_is_whole(value) and value >= 0) or (
            _is_number(value) and 0.0 <= value <= 1.0):
        return None
    return "a whole number of batches >= 0, a fraction from 0.0 to 1.0, or null"


def whole_list(value: object) -> str | None:
    if isinstance(value, ListConfig | list) and value and len(value) <= 1000 and all(
            _is_whole(v) and 1 <= v <= MOST for v in value):
        return None
    return "a list of at most 1,000 whole numbers from 1 to 2,147,483,647, e.g. [85, 170]"


def betas(value: object) -> str | None:
    if isinstance(value, ListConfig | list) and len(value) == 2 and all(
            _is_number(b) and 0.0 <= b < 1.0 for b in value):
        return None
    return "two numbers in [0, 1), e.g. [0.9, 0.999]"


def order(value: object) -> str | None:
    if isinstance(value, ListConfig | list):
        return None  # layer names: checked against the built net (train/layer_order.py)
    advice = one_of(*NAMED_ORDERS)(value)
    return advice and f"{advice}, or a list of layer names"


def precision(value: object) -> str | None:
    return None if str(value) in PRECISIONS else one_of(*PRECISIONS)(str(value))


def workers(value: object) -> str | None:
    return None if value == "auto" or (_is_whole(value) and value >= 0) else \
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
    "data.batch_rule": one_of("global", "per_device"),
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


def _yaml(value: object) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) \
        else str(value)


def _refuse(key: str, value: object, advice: str) -> None:
    shown = _yaml(value)
    if len(shown) > 80:  # a pasted 3,000-character value is named, not echoed
        shown = f"{shown[:60]}... ({len(shown):,} characters)"
    raise ConfigError(f"{key}={shown} is not allowed: use {advice}.")


def _model_rules(model: DictConfig) -> None:
    """Depth and width as the chosen net (model._target_) builds them."""
    target = str(model.get("_target_", "")).rsplit(".", 1)[-1]
    depth, width = model.get("depth"), model.get("width")
    if target == "WideResNet":
        if not (_is_whole(depth) and depth <= 1000 and any(
                depth >= 6 + k and (depth - k) % 6 == 0 for k in (2, 4))):
            _refuse("model.depth", depth, "6n+2 (8, 14, 20, 26, ...) or Zagoruyko's 6n+4 "
                    "naming of the same nets (10, 16, 22, 28, ...), at most 1000")
        if not (_is_whole(width) and 1 <= width <= MOST):
            _refuse("model.width", width, "a whole number >= 1")
    elif target == "CifarResNet" and not (_is_whole(depth) and 8 <= depth <= 1000
                                          and (depth - 2) % 6 == 0):
        _refuse("model.depth", depth, "6n+2 (paper 3: 20; also 8, 14, 32, 44, 56, ...)")
    elif target == "ResNet21" and depth != 21:
        _refuse("model.depth", depth, "21 (paper 3's count of ResNet-18's weight layers)")
    elif target == "VGG" and depth not in (5, 9):
        _refuse("model.depth", depth, "5 or 9 (paper 3's VGGs)")
    elif target == "WideResNet18":
        if depth != 18:
            _refuse("model.depth", depth, "18 (paper 1's ImageNet net)")
        if not (_is_number(width) and 0 < width <= 10_000 and float(64 * width).is_integer()):
            _refuse("model.width", width, "a width whose 64 x width is a whole number of "
                    "channels (2.5 gives the paper's 160)")
    temperature, norm = model.get("temperature"), model.get("norm", "batchnorm")
    if norm == "batchnorm" and temperature is not None:
        raise ConfigError(f"model.temperature={temperature} only applies to "
                          "model.norm=shifted_relu (with batchnorm the BN on the logits undoes "
                          "any scaling): drop it or set model.norm=shifted_relu.")
    if norm == "shifted_relu" and not (_is_number(temperature) and temperature > 0):
        _refuse("model.temperature", temperature, "a positive number with "
                "model.norm=shifted_relu (paper 2: 80 fp32 / 40 1-bit on CIFAR-10, 25 on "
                "CIFAR-100)")


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
                _refuse(key, value, advice)
    if only is not None:
        return
    _model_rules(cfg.model)
    _net_size(cfg.model)
    world_size(cfg.trainer)
    batch_rule(cfg)
    absolute_uri(cfg.tracking.uri)


# --- the command line: unknown keys and options, before anything is built --------------


def _close(word: str, candidates: list[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(word, candidates, n=n, cutoff=cutoff)


def group_options(conf: Path) -> dict[str, list[str]]:
    """conf/'s config groups (dataset, model, ...) and the options each offers."""
    groups = {}
    for folder in sorted(p for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
        groups[folder.name] = sorted(f.stem for f in folder.glob("*.yaml"))
    return groups


def _keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of a config, inner nodes included (model, model.bits, ...)."""
    keys = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            dotted = f"{prefix}{key}"
            keys.append(dotted)
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                keys += _keys(child, f"{dotted}.")
    return keys


def suggest_key(key: str, keys: list[str], groups: dict[str, list[str]]) -> list[str]:
    """At most two keys near `key`: the closest whole dotted name, then the keys whose last
    part is closest to its last part (bit -> model.bits, lr -> optim.lr)."""
    candidates = list(dict.fromkeys(keys + list(groups)))
    found = _close(key, candidates, n=1, cutoff=0.75)
    by_leaf: dict[str, list[str]] = {}
    for k in candidates:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for near in _close(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.7):
        found += by_leaf[near]
    return list(dict.fromkeys(found))[:2]


def unknown_key_sentence(key: str, keys: list[str], groups: dict[str, list[str]]) -> str:
    near = suggest_key(key, keys, groups)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    return (f"{key} is not a setting of binwrn-run: {hint}(binwrn-run --help lists the "
            "config groups; binwrn-run --cfg job prints every key with its value).")


def unknown_option_sentence(group: str, option: str, options: list[str]) -> str:
    near = _close(option, options)
    hint = f"did you mean {group}={near[0]}? " if near else ""
    return (f"{group}={option} is not one of the {group} options: {hint}use one of "
            f"{', '.join(options)}.")


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise ConfigError(f"{str(err).splitlines()[0]}: write each setting as key=value "
                          "(quote values with spaces or commas).") from None


def job_overrides(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of each job a command line runs: Hydra's basic sweep (the product
    of every comma list) under -m, else the one job as given."""
    parsed = _parse(overrides)
    if not multirun:
        return [list(overrides)]
    axes = []
    for o in parsed:
        if o.is_sweep_override() and o.is_discrete_sweep():
            key = o.get_key_element()
            axes.append([f"{key}={value}" for value in o.sweep_string_iterator()])
        else:
            axes.append([o.input_line])
    return [list(combo) for combo in itertools.product(*axes)]


def _explain(overrides: list[str]) -> str | None:
    """The sentence for the first override that names no key or group option, if any."""
    from binwrn.configuration.compose import conf_dir, hydra_compose

    groups = group_options(conf_dir())
    parsed = _parse(overrides)
    for o in parsed:
        key = o.key_or_group
        if o.is_add() or o.is_force_add() or o.is_delete() or key.startswith("hydra"):
            continue
        if key in groups:
            value = o.value()
            if isinstance(value, str) and value not in groups[key] and value != "null":
                return unknown_option_sentence(key, value, groups[key])
    base = hydra_compose([o.input_line for o in parsed if o.key_or_group in groups
                    or o.key_or_group.startswith("hydra") or o.is_add() or o.is_force_add()])
    keys = _keys(base)
    for o in parsed:
        key = o.key_or_group
        if key in groups or key.startswith("hydra") or o.is_add() or o.is_force_add():
            continue
        if key not in keys:
            return unknown_key_sentence(key, keys, groups)
    return None


def compose_checked(overrides: list[str]) -> DictConfig:
    """conf/ composed with `overrides`; an unknown key or option is a ConfigError with a
    "did you mean", any other composition error one with Hydra's first line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from binwrn.configuration.compose import hydra_compose

    try:
        return hydra_compose(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        try:
            sentence = _explain(overrides)
        except (HydraException, OmegaConfBaseException):
            sentence = None
        if sentence is None:  # Hydra's first line, without its "+key" advice
            lines = [line for line in str(err).splitlines()
                     if line.strip() and "use +" not in line and "append" not in line]
            sentence = (f"{' '.join(overrides)} does not compose ({lines[0].strip()}): fix "
                        "or drop the override.")
        raise ConfigError(sentence) from None


def check_command_line(overrides: list[str], multirun: bool, values: bool = True) -> None:
    """Compose every job of `binwrn-run [-m] overrides` and, with `values`, check it;
    raises the first job's problem."""
    jobs = job_overrides(overrides, multirun)
    shared = set.intersection(*(set(job) for job in jobs))
    for number, job in enumerate(jobs):
        try:
            cfg = compose_checked(job)
            if values:
                check_config(cfg)
        except BinwrnError as err:
            if len(jobs) == 1:
                raise
            own = " ".join(o for o in job if o not in shared)
            raise type(err)(f"job {number} ({own}): {err}") from None
