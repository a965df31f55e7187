"""Where binwrn's shipped YAML lives (conf/, sweeps/), and composing conf/ outside a Hydra app."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from binwrn.configuration.parallel import DDP, devices_per_node

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


def compose(overrides: list[str]) -> DictConfig:
    """`hydra_compose`, an unknown key or option refused with a "did you mean" (ConfigError)."""
    from binwrn.configuration.checks import compose_checked

    return compose_checked(overrides)
