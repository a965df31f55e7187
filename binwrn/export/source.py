"""What binwrn-export packs: a tracked run (by id) or a checkpoint file, with its config.

A run gives `config/resolved.yaml` and `checkpoints/final.ckpt` from its artifacts (or, if
the checkpoint was not uploaded, the one in its local output directory, tag
`binwrn.output_dir`). A checkpoint file takes its config from the Hydra output directory it
sits in (`<dir>/.hydra/config.yaml`) or from `--config`.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from binwrn.config import model_arguments
from binwrn.errors import ConfigError, DataError
from binwrn.models.resnet18_wide import WideResNet18
from binwrn.models.wrn import WideResNet
from binwrn.tracking.metrics import final_value

RUN_ID = re.compile(r"[0-9a-f]{32}")
PACKABLE_NETS = {  # model._target_ -> class: the nets that have a .bwn topology
    "binwrn.models.WideResNet": WideResNet, "binwrn.models.wrn.WideResNet": WideResNet,
    "binwrn.models.WideResNet18": WideResNet18,
    "binwrn.models.resnet18_wide.WideResNet18": WideResNet18,
}


def packable_net(cfg: DictConfig) -> type[WideResNet | WideResNet18]:
    """The class `cfg.model` builds, if binwrn-export can pack it (docs/packed-format.md)."""
    target = cfg.model.get("_target_")
    if target not in PACKABLE_NETS:
        raise ConfigError(f"binwrn-export packs model=wrn and model=resnet18_wide only; {target} "
                          "(one of paper 3's nets) has no packed format: use --size-only for "
                          "its sizes.")
    return PACKABLE_NETS[target]


@dataclass(frozen=True)
class Source:
    """A trained model's config and weights, and where they came from."""

    cfg: DictConfig
    state_dict: dict[str, torch.Tensor]
    label: str
    run_id: str | None = None
    tracking_uri: str | None = None
    recorded: dict[str, float] = field(default_factory=dict)  # the run's final test/acc

    def model_kwargs(self) -> dict:
        """The net's arguments from `model:` (without Hydra's `_target_` and the label)."""
        packable_net(self.cfg)
        return model_arguments(self.cfg.model)


def load_config(path: Path, overrides: list[str]) -> DictConfig:
    """A stored config with `key=value` overrides of keys it has (e.g. data.root=...)."""
    try:
        cfg = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, ValueError, yaml.YAMLError) as err:
        raise DataError(f"Cannot read the config {path} ({type(err).__name__}): give the "
                        "run's config/resolved.yaml or .hydra/config.yaml.") from None
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ConfigError(f"{item} is not an override of the run's config: write "
                              "key=value for a key it has, e.g. data.root=/data/cifar10.")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)  # 200 -> int, null
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"The config {path} does not resolve ({str(err).splitlines()[0]}): "
                          "give the run's config/resolved.yaml with --config.") from None
    return cfg


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors from a Lightning checkpoint (keys without the `model.` prefix)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["state_dict"]
    except Exception as err:  # unpickling and format failures surface in many types
        raise DataError(f"{path} is not a checkpoint binwrn-run wrote ({type(err).__name__}): "
                        "give its checkpoints/final.ckpt or the run id.") from None
    return {k.removeprefix("model."): v for k, v in state.items()}


def from_checkpoint(path: Path, config: Path | None, overrides: list[str]) -> Source:
    config = config or path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"No config beside {path} (looked for {config}): pass --config with "
                          "the run's config/resolved.yaml.")
    return Source(load_config(config, overrides), load_state_dict(path), str(path))


def from_run(run_id: str, tracking_uri: str | None, overrides: list[str]) -> Source:
    from binwrn.tracking.lookup import fetch_artifact, find_run, resolve_uri

    uri = resolve_uri(tracking_uri)
    run = find_run(uri, run_id)
    if run.info.status != "FINISHED":
        raise ConfigError(f"Run {run_id} is {run.info.status}, not FINISHED: export a run "
                          "that completed.")
    with tempfile.TemporaryDirectory(prefix="binwrn-export-") as tmp:
        config = fetch_artifact(uri, run_id, "config/resolved.yaml", Path(tmp))
        ckpt = fetch_artifact(uri, run_id, "checkpoints/final.ckpt", Path(tmp))
        if ckpt is None and run.data.tags.get("binwrn.output_dir"):
            local = Path(run.data.tags["binwrn.output_dir"]) / "checkpoints" / "final.ckpt"
            ckpt = local if local.is_file() else None
        if config is None or ckpt is None:
            raise DataError(f"Run {run_id} has no stored config/resolved.yaml or final.ckpt: "
                            "export its checkpoint file with --config instead.")
        final = final_value(run.data.metrics, "acc")  # the model as saved, BN recomputed
        recorded = {} if final is None else {"test/acc": final}
        return Source(load_config(config, overrides), load_state_dict(ckpt), f"run {run_id}",
                      run_id, uri, recorded)


def load_source(spec: str, tracking_uri: str | None = None, config: str | None = None,
                overrides: list[str] | None = None) -> Source:
    """A checkpoint path, or else a run id looked up in the tracking store."""
    overrides = overrides or []
    path = Path(spec).expanduser()
    if path.is_file():
        return from_checkpoint(path, Path(config).expanduser() if config else None, overrides)
    if RUN_ID.fullmatch(spec):
        return from_run(spec, tracking_uri, overrides)
    raise ConfigError(f"{spec} is neither a checkpoint file nor an MLflow run id: give the "
                      "path of a final.ckpt or the run id binwrn-run printed.")
