"""What `binwrn-sweep NAME --launcher slurm` submits, computed without a cluster.

Hydra's submitit launcher sizes every SLURM job of a sweep alike, from
conf/hydra/launcher/slurm.yaml resolved against the sweep's shared config (the jobs' own grid
values are applied later, inside each job): `nodes` from `trainer.num_nodes`, `tasks_per_node`
and `gpus_per_node` from `trainer.devices` under `trainer=ddp` (one task per GPU; srun starts
them and Lightning's SLURMEnvironment finds them, train/cluster.py). Here the same config is
composed, the launcher is instantiated as Hydra instantiates it, and submitit's own sbatch
template renders the header it would submit; nothing is submitted (`binwrn-sweep --dry-run`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from binwrn.configuration.compose import slurm_gpus_per_node, slurm_tasks_per_node
from binwrn.errors import ConfigError

SLURM_LAUNCHER = "hydra/launcher=slurm"
# The launcher's keys that configure submitit's executor itself, not the sbatch file.
_EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")


@dataclass(frozen=True)
class SlurmJobShape:
    """One SLURM job's resources, as submitit's launcher will request them."""

    params: dict  # the launcher's parameters (hydra.launcher.*), resolved

    @property
    def nodes(self) -> int:
        return self.params["nodes"]

    @property
    def tasks_per_node(self) -> int:
        return self.params["tasks_per_node"]

    @property
    def gpus_per_node(self) -> int | None:
        return self.params.get("gpus_per_node")

    @property
    def gpus_per_task(self) -> int:
        """GPUs each task (DDP rank) uses: bound per task, or the node's shared evenly."""
        if self.params.get("gpus_per_task"):
            return self.params["gpus_per_task"]
        return (self.gpus_per_node or 0) // self.tasks_per_node

    def describe(self) -> str:
        gpus = (f"{self.gpus_per_node} GPUs per node ({self.gpus_per_task} per task)"
                if self.gpus_per_node else "no GPUs")
        return (f"{self.nodes} node(s) x {self.tasks_per_node} task(s) per node "
                f"({self.nodes * self.tasks_per_node} srun tasks, one binwrn-run rank each), "
                f"{gpus}, {self.params.get('cpus_per_task')} CPUs per task, "
                f"{self.params.get('mem_gb')} GB per node, {self.params.get('timeout_min')} min")

    def sbatch_header(self) -> str:
        """The #SBATCH lines of the file submitit would hand to sbatch for one job."""
        from submitit.slurm.slurm import SlurmExecutor

        class _RenderOnly(SlurmExecutor):  # submitit refuses to start without srun installed
            @classmethod
            def affinity(cls) -> int:
                return 1

        with tempfile.TemporaryDirectory() as folder:
            executor = _RenderOnly(folder)
            options = {k: v for k, v in self.params.items()
                       if k not in _EXECUTOR_KEYS and v is not None}
            executor.update_parameters(**executor._convert_parameters(options))
            text = executor._make_submission_file_text("binwrn-run ...", "dry-run")
        return "\n".join(line.replace(folder, "<submitit folder>") for line in text.splitlines()
                         if line.startswith("#SBATCH"))


def slurm_job_shape(overrides: list[str]) -> SlurmJobShape:
    """The launcher's parameters for a `binwrn-run -m` with these shared overrides (the
    launcher ones included), resolved as Hydra's launcher resolves them."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    from binwrn.configuration.compose import conf_dir

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
            launcher = instantiate(cfg.hydra.launcher)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"The SLURM launcher's settings do not compose "
                          f"({str(err).splitlines()[0]}): fix hydra.launcher.*.") from None
    return SlurmJobShape(dict(launcher.params))


def uses_slurm(launcher_overrides: list[str]) -> bool:
    return SLURM_LAUNCHER in launcher_overrides


def check_jobs_fit(shape: SlurmJobShape, jobs: dict[str, DictConfig]) -> None:
    """Every job must fit the one size submitit gives them all: a grid that varies
    trainer.num_nodes or trainer.devices would start a job's ranks on a wrong node count."""
    for job_id, cfg in jobs.items():
        nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
        wants = (nodes, slurm_tasks_per_node(cfg.trainer), slurm_gpus_per_node(cfg.trainer))
        given = (shape.nodes, shape.tasks_per_node, shape.gpus_per_node)
        if wants[:2] != given[:2] or (wants[2] or 0) > (given[2] or 0):
            raise ConfigError(
                f"{job_id} needs {wants[0]} node(s) x {wants[1]} task(s), {wants[2] or 0} GPUs "
                f"per node, but every SLURM job of this sweep is submitted as {given[0]} x "
                f"{given[1]}, {given[2] or 0} GPUs per node (Hydra's launcher sizes them from "
                "the shared config): give trainer=ddp, trainer.num_nodes and trainer.devices on "
                "the binwrn-sweep command line, not in the sweep's grid.")
