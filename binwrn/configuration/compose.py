"""Where binwrn's shipped YAML lives (conf/, sweeps/), composing conf/ outside a Hydra app,
and a composition's failure as one sentence: an unknown key or group option gets a "did you
mean" (difflib over the composed keys and the options in conf/), whether `compose` or
binwrn-run's own Hydra app (binwrn/cli.py) was composing."""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from binwrn.configuration.parallel import DDP, devices_per_node
from binwrn.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent  # binwrn/


def slurm_tasks_per_node(trainer: DictConfig) -> int:
    """SLURM tasks on each node of a job: one per device under trainer=ddp (srun starts every
    DDP rank, train/cluster.py), else one."""
    return devices_per_node(trainer) if trainer.get("strategy") == DDP else 1


def slurm_gpus_per_node(trainer: DictConfig) -> int | None:
    """GPUs on each node of a job: all the node's ranks', which every task sees (Lightning
    maps local rank r to GPU r); none for trainer.accelerator=cpu."""
    return None if trainer.get("accelerator") == "cpu" else devices_per_node(trainer)


# conf/hydra/launcher/slurm.yaml sizes each SLURM job from the job's trainer.* with these.
OmegaConf.register_new_resolver("binwrn.slurm_tasks_per_node", slurm_tasks_per_node,
                                replace=True)
OmegaConf.register_new_resolver("binwrn.slurm_gpus_per_node", slurm_gpus_per_node,
                                replace=True)


def _shipped(folder: str, packed_as: str, marker: str) -> Path:
    """`folder` at the top of a checkout, or its copy packed into an installed wheel."""
    for candidate in (_PACKAGE.parent / folder, _PACKAGE / packed_as):
        if (candidate / marker).exists():
            return candidate
    raise RuntimeError(f"binwrn's {folder}/ folder is missing from this installation.")


def conf_dir() -> Path:
    return _shipped("conf", "conf", "config.yaml")


def sweeps_dir() -> Path:
    return _shipped("sweeps", "sweep_files", "p1_fig6_ablation.yaml")


def hydra_compose(overrides: list[str]) -> DictConfig:
    """The real config under conf/ with Hydra-style overrides (hydra.searchpath included);
    raises Hydra's own errors."""
    from hydra import compose as compose_config
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose_config(config_name="config", overrides=overrides)


# --- composition failures: unknown keys and options, with a did-you-mean ---------------


def close_matches(word: str, candidates: list[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
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
    found = close_matches(key, candidates, n=1, cutoff=0.75)
    by_leaf: dict[str, list[str]] = {}
    for k in candidates:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for near in close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.7):
        found += by_leaf[near]
    return list(dict.fromkeys(found))[:2]


def unknown_key_sentence(key: str, keys: list[str], groups: dict[str, list[str]]) -> str:
    near = suggest_key(key, keys, groups)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    return (f"{key} is not a setting of binwrn-run: {hint}(binwrn-run --help lists the "
            "config groups; binwrn-run --cfg job prints every key with its value).")


def unknown_option_sentence(group: str, option: str, options: list[str]) -> str:
    near = close_matches(option, options)
    hint = f"did you mean {group}={near[0]}? " if near else ""
    return (f"{group}={option} is not one of the {group} options: {hint}use one of "
            f"{', '.join(options)}.")


def parse_overrides(overrides: list[str]):
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
    parsed = parse_overrides(overrides)
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
    groups = group_options(conf_dir())
    parsed = parse_overrides(overrides)
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


def composition_error(overrides: list[str], err: Exception) -> ConfigError:
    """Hydra's refusal to compose `overrides` as one sentence: an unknown key or option with a
    "did you mean", else Hydra's first line without its "+key" advice."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        sentence = _explain(overrides)
    except (HydraException, OmegaConfBaseException):
        sentence = None
    if sentence is None:
        lines = [line for line in str(err).splitlines()
                 if line.strip() and "use +" not in line and "append" not in line]
        sentence = (f"{' '.join(overrides)} does not compose ({lines[0].strip()}): fix "
                    "or drop the override.")
    return ConfigError(sentence)


def compose(overrides: list[str]) -> DictConfig:
    """conf/ composed with `overrides`; an unknown key or option is a ConfigError with a
    "did you mean", any other composition error one with Hydra's first line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return hydra_compose(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise composition_error(overrides, err) from None
