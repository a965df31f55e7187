"""What binwrn-export packs: a tracked run (by id) or a checkpoint file, with its config.

A run gives `config/resolved.yaml` and `checkpoints/final.ckpt` from its artifacts (or, if
the checkpoint was not uploaded, the one in its local output directory, tag
`binwrn.output_dir`). A checkpoint file takes its config from the Hydra output directory it
sits in (`<dir>/.hydra/config.yaml`) or from `--config`. The caller says how a config file
becomes plain values (`read_config`: binwrn/configuration/stored.py), so nothing here reads a
config tree.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from binwrn.errors import ConfigError, DataError
from binwrn.export.run_config import RunConfig
from binwrn.models.resnet18_wide import WideResNet18
from binwrn.models.wrn import WideResNet
from binwrn.tracking.metrics import final_value

RUN_ID = re.compile(r"[0-9a-f]{32}")
PACKABLE_NETS = {  # model._target_ -> class: the nets that have a .bwn topology
    "binwrn.models.WideResNet": WideResNet, "binwrn.models.wrn.WideResNet": WideResNet,
    "binwrn.models.WideResNet18": WideResNet18,
    "binwrn.models.resnet18_wide.WideResNet18": WideResNet18,
}
ReadConfig = Callable[[Path], RunConfig]  # a stored config file -> what export reads of it


def packable_net(config: RunConfig) -> type[WideResNet | WideResNet18]:
    """The class `config` builds, if binwrn-export can pack it (docs/packed-format.md)."""
    target = config.model_target
    if target not in PACKABLE_NETS:
        raise ConfigError(f"binwrn-export packs model=wrn and model=resnet18_wide only; {target} "
                          "(one of paper 3's nets) has no packed format: use --size-only for "
                          "its sizes.")
    return PACKABLE_NETS[target]


@dataclass(frozen=True)
class Source:
    """A trained model's config and weights, and where they came from."""

    config: RunConfig
    state_dict: dict[str, torch.Tensor]
    label: str
    run_id: str | None = None
    tracking_uri: str | None = None
    recorded: dict[str, float] = field(default_factory=dict)  # the run's final test/acc

    def model_kwargs(self) -> dict:
        """The net's arguments from `model:` (without Hydra's `_target_` and the label)."""
        packable_net(self.config)
        return self.config.model_kwargs


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors from a Lightning checkpoint (keys without the `model.` prefix)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}): give a checkpoint you can "
                        "read.") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["state_dict"]
    except Exception as err:  # unpickling and format failures surface in many types
        raise DataError(f"{path} is not a checkpoint binwrn-run wrote ({type(err).__name__}): "
                        "give its checkpoints/final.ckpt or the run id.") from None
    return {k.removeprefix("model."): v for k, v in state.items()}


def from_checkpoint(path: Path, config: Path | None, read_config: ReadConfig) -> Source:
    config = config or path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"No config beside {path} (looked for {config}): pass --config with "
                          "the run's config/resolved.yaml.")
    return Source(read_config(config), load_state_dict(path), str(path))


def from_run(run_id: str, tracking_uri: str | None, read_config: ReadConfig) -> Source:
    from binwrn.tracking.lookup import fetch_artifact, find_run, resolve_uri
    from binwrn.tracking.references import SOURCE_TAG, is_reference

    uri = resolve_uri(tracking_uri)
    run = find_run(uri, run_id)
    if is_reference(run):
        raise ConfigError(f"Run {run_id} is a paper reference (the published numbers of "
                          f"{run.data.tags[SOURCE_TAG]}), not a trained model: export one of "
                          "your own runs.")
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
        return Source(read_config(config), load_state_dict(ckpt), f"run {run_id}",
                      run_id, uri, recorded)


def load_source(spec: str, read_config: ReadConfig, tracking_uri: str | None = None,
                config: str | None = None) -> Source:
    """A checkpoint path, or else a run id looked up in the tracking store; its config file
    read by `read_config`."""
    path = Path(spec).expanduser()
    if path.is_file():
        return from_checkpoint(path, Path(config).expanduser() if config else None, read_config)
    if RUN_ID.fullmatch(spec):
        return from_run(spec, tracking_uri, read_config)
    raise ConfigError(f"{spec} is neither a checkpoint file nor an MLflow run id: give the "
                      "path of a final.ckpt or the run id binwrn-run printed.")
