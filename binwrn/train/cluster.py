"""DDP ranks started by the cluster (`srun`, `torchrun`, on one node or several) or, on one
machine, by binwrn itself: rank zero starts the others as torchrun would (train/local_ranks.py).

Every rank is one `binwrn-run` process with the same overrides, and Lightning's own cluster
environments (`SLURMEnvironment`, `TorchElasticEnvironment`) say which rank each is and where
rank zero listens. Every rank composes the config itself; then, over the process group:

1. the ranks check they composed the same config and that every rank could build its data
   (`run_together`: a problem on any rank is refused on all of them, in one sentence);
2. global rank zero decides the run (a new one, or the unfinished run of the same config
   hash that it resumes, on any node count) and its output folder, creates or reopens the
   MLflow run, and broadcasts run id, folder and checkpoint to the others
   (`broadcast_object_list`). It alone writes: the MLflow run, checkpoints, outcome.json,
   the Hydra folder. The other ranks (train/fit.py `follow`) write nothing;
3. all train, recompute BN and test in lockstep (train/fit.py).

Nothing here imports MLflow; Lightning is imported only where several processes train.
"""

from __future__ import annotations

import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from binwrn.errors import BinwrnError, ConfigError, Diverged, Interrupted

if TYPE_CHECKING:
    from binwrn.train.local_ranks import OtherRanks
    from binwrn.train.spec import TrainerArgs

# Who started the ranks: torchrun, srun, or binwrn's rank zero on one machine (the MLflow tag
# binwrn.started_by). The ranks binwrn starts carry STARTED_BY_BINWRN beside torchrun's
# variables.
TORCHRUN, SRUN, BINWRN = "torchrun", "srun", "binwrn"
STARTED_BY_BINWRN = "BINWRN_LOCAL_RANKS"
# Seconds rank zero waits, after fit or test failed, for a rank it started to show that it
# died first (its collective then fails on the closed connection).
LOST_RANK_WAIT_S = 5
# SLURM job names under which Lightning does not treat a job as SLURM-launched (an
# interactive allocation whose processes something else starts).
_INTERACTIVE_JOB_NAMES = ("bash", "interactive")
# Set by srun in each task, absent in the batch script itself, which SLURM_NTASKS also
# describes: a `binwrn-run` there is one process (binwrn starts its ranks), not a task.
# SLURM's special steps (batch script, external, interactive) have ids near 2**32.
_SRUN_STEP = ("SLURM_STEP_ID", "SLURM_STEPID")
_SPECIAL_STEPS = 0xFFFFFFF0


def _srun_tasks() -> int:
    """Tasks of the srun step that started this process (0: not an srun task)."""
    step = next((os.environ[name] for name in _SRUN_STEP if name in os.environ), "")
    if (not step.isdigit() or int(step) >= _SPECIAL_STEPS
            or os.environ.get("SLURM_JOB_NAME") in _INTERACTIVE_JOB_NAMES):
        return 0
    return int(os.environ.get("SLURM_NTASKS", "1") or 1)


def rank_from_environment() -> int:
    """The global rank torchrun or srun gave this process (0 where neither started several),
    read from the environment alone, before Hydra and Lightning (the variables Lightning's
    TorchElasticEnvironment and SLURMEnvironment read)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return int(os.environ.get("RANK", "0"))
    if _srun_tasks() > 1:
        return int(os.environ.get("SLURM_PROCID", "0"))
    return 0


def started_as_follower(argv: list[str]) -> bool:
    """Whether this `binwrn-run ARGV` (one config, not `-m`) is a rank other than zero."""
    return "-m" not in argv and "--multirun" not in argv and rank_from_environment() != 0


def follower_hydra_overrides() -> list[str]:
    """Hydra overrides for such a rank: no output folder (Hydra's run dir is the existing,
    writable temp folder), no log file, no saved config; rank zero writes those. The config
    itself is composed exactly as rank zero's."""
    return [f"hydra.run.dir={tempfile.gettempdir()}", "hydra.output_subdir=null",
            "hydra/job_logging=stdout"]


class Refused(ConfigError):
    """A refusal every rank raises alike (rank zero says it for all of them)."""


@dataclass
class Launched:
    """This process as one rank of several; a Lightning environment."""

    environment: object  # lightning.fabric.plugins.environments.ClusterEnvironment
    kind: str            # torchrun | srun | binwrn
    world: int
    nodes: int
    per_node: int
    others: OtherRanks | None = None  # rank zero on one machine: the ranks it started
    _shared: bool = False  # rank zero: the run has been announced to the others

    @property
    def rank(self) -> int:
        return self.environment.global_rank()

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    def where(self) -> str:
        return (f"rank {self.rank} of {self.world} ({self.kind}, node "
                f"{self.environment.node_rank()}, {socket.gethostname()})")

    # -- the process group --------------------------------------------------------------

    def connect(self, trainer: TrainerArgs) -> None:
        """The process group, exactly as Lightning's DDPStrategy would open it at fit (its
        own `_init_dist_connection`, backend and timeout), only earlier: rank zero's
        decisions travel over it before the Trainer starts. Lightning then finds it open."""
        import torch
        from torch.distributed.constants import default_pg_timeout

        from binwrn.train.fast_path import on_cuda
        from binwrn.train.lightning_private import (
            _get_default_process_group_backend_for_device,
            _init_dist_connection,
            _set_num_threads_if_needed,
        )

        device = torch.device("cpu")
        if on_cuda(trainer.accelerator):  # Lightning's root device: the local rank's GPU
            devices = trainer.devices
            index = self.environment.local_rank()
            device = torch.device("cuda", devices[index] if isinstance(devices, list)
                                  else index)
            torch.cuda.set_device(device)
        _set_num_threads_if_needed(num_processes=self.per_node)  # as Lightning's launcher does
        backend = _get_default_process_group_backend_for_device(device)
        _init_dist_connection(self.environment, backend, timeout=default_pg_timeout,
                              **({"device_id": device} if device.type == "cuda" else {}))

    def disconnect(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def _gather(self, value):
        import torch.distributed as dist

        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def run_together(self, step, what: str):
        """`step()` on every rank; if it fails on any, every rank refuses with that rank's
        reason (nobody is left waiting in a collective for a rank that gave up)."""
        problem, local_error, result = None, None, None
        try:
            result = step()
        except BinwrnError as err:
            problem = str(err)
        except Exception as err:  # a bug: re-raised here after the others have been told
            problem, local_error = f"{type(err).__name__}: {err}", err
        problems = self._gather((self.where(), problem))
        failed = [(where, p) for where, p in problems if p is not None]
        if local_error is not None:
            raise local_error
        if failed:
            if self.kind == BINWRN and problems[0][1] is not None:  # one machine, one reason:
                raise Refused(problems[0][1])  # said as one process says it
            where, reason = failed[0]
            more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
            raise Refused(f"{what} failed on {where}{more}: {reason}")
        return result

    def agree_on_config(self, digest: str) -> None:
        """Every rank must have composed the same config: `digest` of it, node-local paths
        aside (binwrn/configuration/parallel.py)."""
        digests = self._gather((self.where(), digest))
        differing = [where for where, d in digests if d != digests[0][1]]
        if differing:
            raise Refused(f"{', '.join(differing)} composed a different config from rank 0: "
                          "start every rank with the same command line and environment.")

    # -- rank zero's decisions ----------------------------------------------------------

    def share(self, message: dict | None = None) -> dict:
        """Rank zero's `message` to every rank (the others pass nothing and get it)."""
        import torch.distributed as dist

        box = [message]
        dist.broadcast_object_list(box, src=0)
        if box[0].get("failed") is not None and not self.is_rank_zero:
            raise Refused(f"rank 0 could not start the run: {box[0]['failed']}")
        return box[0]

    @contextmanager
    def leading(self):
        """Around rank zero's work: if it fails before it has shared the run, the others are
        told why (instead of waiting for the run until the process group's timeout)."""
        try:
            yield
        except BaseException as err:
            if not self._shared:
                self.share({"failed": str(err) or type(err).__name__})
            raise

    @contextmanager
    def training(self):
        """Around rank zero's fit and test: where it started the other ranks itself and one
        of them died, that death is the run's error, not the closed connection that rank
        zero's next collective fails on."""
        try:
            yield
        except Exception as err:
            if isinstance(err, BinwrnError | Diverged | Interrupted) or self.others is None:
                raise
            lost = self.others.failed(wait_s=LOST_RANK_WAIT_S)
            if lost is None:
                raise
            raise BinwrnError(f"{lost} during training, and the run stopped with it: the "
                              "same command resumes it from its last checkpoint.") from err

    def announce_run(self, run_id: str, work_dir: Path, checkpoint: Path | None) -> None:
        """Rank zero: the run, its folder and the checkpoint it resumes from, to all ranks;
        then wait until every rank has built its Trainer (`follow`)."""
        self.share({"failed": None, "run_id": run_id, "work_dir": str(work_dir),
                    "checkpoint": str(checkpoint) if checkpoint else None})
        self._shared = True
        self.run_together(lambda: None, "Starting the run")


def launched_processes() -> Launched | None:
    """This process as one of several that torchrun, srun or binwrn's rank zero started, or
    None (one process, or rank zero of one machine before it starts the others). torchrun
    wins inside a SLURM job: its variables describe the processes, where SLURM's describe the
    job's tasks. An srun task is what Lightning's SLURMEnvironment detects, in a step of
    several tasks (SLURM_STEP_ID)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        from lightning.fabric.plugins.environments import TorchElasticEnvironment

        if not TorchElasticEnvironment.detect():
            return None
        environment = TorchElasticEnvironment()
        kind = BINWRN if STARTED_BY_BINWRN in os.environ else TORCHRUN
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        world = environment.world_size()
        nodes = int(os.environ.get("GROUP_WORLD_SIZE", max(1, world // per_node)))
    elif _srun_tasks() > 1:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        if not SLURMEnvironment.detect():  # an interactive allocation: not srun's tasks
            return None
        try:  # Lightning's own checks of the srun variables
            environment, kind = SLURMEnvironment(auto_requeue=False), SRUN
        except RuntimeError as err:
            raise ConfigError(f"The SLURM job's variables do not describe one task per "
                              f"device ({err})") from None
        world = environment.world_size()
        per_node = int(os.environ["SLURM_NTASKS_PER_NODE"])
        nodes = int(os.environ.get("SLURM_NNODES", max(1, world // per_node)))
    else:
        return None
    if world <= 1:
        return None
    return Launched(environment, kind, world, nodes, per_node)

