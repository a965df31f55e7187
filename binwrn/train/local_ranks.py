"""DDP on one machine (`binwrn-run trainer=ddp`): the `binwrn-run` job is rank zero and starts
the other ranks itself, as torchrun would start them: each one `binwrn-run` process with the
job's own overrides and torchrun's variables (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
`MASTER_ADDR`, ...). From there every rank takes the path of ranks a cluster started
(train/cluster.py): all compose the config and agree on it, rank zero decides the run and
broadcasts it, the others follow it and write nothing.

Why not Lightning's own `ddp` launcher, which re-runs the command line: a `-m` sweep would
be run again in full by every rank, and the worker of a joblib or submitit sweep has no
command line of its one job (loky's is the whole sweep's, submitit's none); the job's own
overrides are in Hydra's config while it runs, and that is what the ranks are started with.
`ddp_spawn` would pickle the Trainer (with the MLflow client) into fresh processes for fit
and again for test.

Rank zero looks after the ranks it started: a thread watches them (one that dies while rank
zero waits for it in a collective ends the run instead of leaving it waiting); Ctrl-C and
SLURM's requeue signal (SIGUSR2) are rank zero's to handle, the others ignore them; and when
the job ends, the others end with it and this process is left as it was for the next job of
a sweep run in the same process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from binwrn.environment import restored_environ
from binwrn.train.cluster import BINWRN, STARTED_BY_BINWRN, Launched

log = logging.getLogger(__name__)
# Seconds the other ranks get to exit by themselves after a finished run, and after a failure
# or a stop all ranks agreed on, before they are killed (one left waiting in a collective
# that rank zero will never join exits only so).
FINISHED_EXIT_S, FAILED_EXIT_S = 120, 20
WATCH_PERIOD_S = 1  # how often the watcher looks at the other ranks
# What this process sets in its own environment for the job: removed afterwards, so that the
# next job of a sweep in this process starts its own ranks again (OMP_NUM_THREADS: set by
# Lightning's thread rule when the process group opens).
_VARIABLES = ("TORCHELASTIC_RUN_ID", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
              "GROUP_RANK", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              STARTED_BY_BINWRN, "OMP_NUM_THREADS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ended(rank: int, proc: subprocess.Popen) -> str:
    code = proc.returncode
    how = (f"was killed by {signal.Signals(-code).name}" if code < 0
           else f"exited with code {code}")
    return f"DDP rank {rank} (process {proc.pid}) {how}"


class OtherRanks:
    """The processes of ranks 1 to n-1, and the thread that watches them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self._ending = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="binwrn-ddp-ranks",
                                         daemon=True)

    def start(self, command: list[str], world: int) -> None:
        for rank in range(1, world):
            self.procs.append(subprocess.Popen(
                command, env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank)}))
        self._watcher.start()

    def failed(self, wait_s: float = 0.0) -> str | None:
        """The first rank that ended with an error, in words (waiting up to `wait_s` for one);
        None while all run or ended well."""
        deadline = time.monotonic() + wait_s
        while True:
            for rank, proc in enumerate(self.procs, start=1):
                if proc.poll() not in (None, 0):
                    return _ended(rank, proc)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def _watch(self) -> None:
        """A rank that dies with an error: rank zero stops by itself where its next collective
        fails (gloo) and reports it (Launched.training). Where the backend only notices after
        its timeout (NCCL: minutes), rank zero still waits FAILED_EXIT_S later: then every
        rank is killed, this one too, as Lightning's own watcher does; the run is left
        RUNNING and the same command resumes it."""
        while not self._ending.wait(WATCH_PERIOD_S):
            lost = self.failed()
            if lost is None:
                continue
            if self._ending.wait(FAILED_EXIT_S):
                return  # rank zero stopped and says why
            log.error("%s and rank 0 is still waiting for it: ending every rank (the same "
                      "command resumes the run from its last checkpoint)", lost)
            for proc in self.procs:
                proc.kill()
            os.kill(os.getpid(), signal.SIGKILL)

    def end(self, grace_s: float) -> None:
        """Stop watching; give the ranks `grace_s` seconds to exit, then kill those left."""
        self._ending.set()
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if grace_s:
                    log.warning("DDP rank process %d did not exit; killing it", proc.pid)
                proc.kill()
                proc.wait()
        if self._watcher.is_alive():
            self._watcher.join()


@contextmanager
def local_ranks(world: int, command: list[str]) -> Iterator[Launched]:
    """This process as rank zero of `world` ranks on this machine, the others started as
    `command` (binwrn-run with the job's overrides) with torchrun's variables, until the job
    ends: then the others are ended (Ctrl-C: at once, as Lightning does; else after they
    have had time to exit), the process group closed, the variables and torch's thread count
    as they were."""
    import torch
    from lightning.fabric.plugins.environments import TorchElasticEnvironment

    threads = torch.get_num_threads()
    others = OtherRanks()
    with restored_environ(_VARIABLES):
        os.environ.update({
            "TORCHELASTIC_RUN_ID": f"binwrn-{os.getpid()}", STARTED_BY_BINWRN: "1",
            "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world), "GROUP_RANK": "0", "GROUP_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())})
        launched = Launched(TorchElasticEnvironment(), BINWRN, world, nodes=1, per_node=world,
                            others=others)
        grace = FINISHED_EXIT_S
        try:
            others.start(command, world)
            yield launched
        except (KeyboardInterrupt, SystemExit):
            grace = 0
            raise
        except BaseException:
            grace = FAILED_EXIT_S
            raise
        finally:
            others.end(grace)
            launched.disconnect()
            torch.set_num_threads(threads)


def leave_signals_to_rank_zero() -> None:
    """In a rank that binwrn's rank zero started: Ctrl-C and SLURM's SIGUSR2 reach every
    process of the job, and rank zero handles them (docs/scale-out.md); rank zero, on the
    same terminal, shows the warnings for all ranks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    warnings.filterwarnings("ignore")
