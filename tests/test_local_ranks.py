"""Rank zero of one machine starts the other ranks itself (binwrn/train/local_ranks.py): with
the job's own overrides, torchrun's variables set for the job only, the ranks ended with the
job, and a rank that died named as the run's error. In process, with real child processes;
the whole path runs in tests/test_ddp_end_to_end.py."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from binwrn.cli import _rank_command
from binwrn.configuration.compose import conf_dir
from binwrn.errors import BinwrnError, DataError, Interrupted
from binwrn.train.cluster import BINWRN, Refused, launched_processes
from binwrn.train.local_ranks import _VARIABLES, OtherRanks, local_ranks
from binwrn.train.spec import TrainerArgs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_the_other_ranks_are_started_with_the_jobs_overrides_and_its_search_path(
        tmp_path: Path) -> None:
    searched = f"hydra.searchpath=[file://{tmp_path}]"  # binwrn-sweep's folder of job files
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", ["trainer=ddp", "seed=3", searched, "hydra.run.dir=/elsewhere"],
                      return_hydra_config=True)
    command = _rank_command(cfg.hydra)
    assert command[:3] == [sys.executable, "-c", "from binwrn.cli import run; run()"]
    assert command[3:] == ["--config-name=config", "trainer=ddp", "seed=3",
                           searched]  # not rank zero's folder


def test_the_ranks_end_with_the_job_and_leave_the_process_as_it_was(clean_env) -> None:
    threads = torch.get_num_threads()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), local_ranks(3, SLEEPER) as launched:
        assert (launched.kind, launched.rank, launched.world, launched.per_node) == (
            BINWRN, 0, 3, 3)
        found = launched_processes()  # the variables Lightning's environment reads
        assert (found.kind, found.rank, found.world) == (BINWRN, 0, 3)
        procs = launched.others.procs
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        torch.set_num_threads(1)
        raise KeyboardInterrupt  # Ctrl-C: the others are ended at once
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2
    assert time.monotonic() - started < 30
    assert not any(name in os.environ for name in _VARIABLES)
    assert launched_processes() is None  # the next job of a sweep starts its own ranks
    assert torch.get_num_threads() == threads


def test_a_rank_that_died_is_the_runs_error(clean_env) -> None:
    with local_ranks(2, [sys.executable, "-c", "import sys; sys.exit(3)"]) as launched:
        (proc,) = launched.others.procs
        with pytest.raises(BinwrnError) as caught, launched.training():
            proc.wait(timeout=60)
            raise RuntimeError("Connection closed by peer")  # what gloo says on rank zero
        with pytest.raises(Interrupted), launched.training():  # a stop all ranks agreed on
            raise Interrupted("stopped by SIGTERM at epoch 2, step 20")
    assert str(caught.value).startswith(f"DDP rank 1 (process {proc.pid}) exited with code 3 "
                                        "during training, and the run stopped with it")
    others = OtherRanks()
    others.start(SLEEPER, 2)
    assert others.failed() is None  # running is no failure
    others.end(grace_s=0)
    assert others.failed() == f"DDP rank 1 (process {others.procs[0].pid}) was killed by SIGKILL"


def test_on_one_machine_rank_zeros_refusal_is_said_as_one_process_says_it(clean_env) -> None:
    def prepare():
        raise DataError("No digits data under /nowhere.")

    with local_ranks(1, SLEEPER) as launched:  # a process group of one, no other rank
        launched.connect(TrainerArgs(settings={"accelerator": "cpu"}))
        with pytest.raises(Refused) as caught:
            launched.run_together(prepare, "Preparing the config")
    assert str(caught.value) == "No digits data under /nowhere."
