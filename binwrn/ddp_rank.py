"""A DDP rank other than zero: `python -m binwrn.ddp_rank PLAN` (started by train/ddp.py).

It builds the model and data from rank zero's resolved config exactly as rank zero did (same
seed, same initial weights), trains, recomputes BN statistics and tests in lockstep with it,
and writes nothing: no Hydra folder, no MLflow run, no checkpoint, no outcome.json. An entry
point, like cli.py: it reads the config and builds the RunSpec that binwrn/train runs.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

from omegaconf import OmegaConf

from binwrn.errors import BinwrnError, Diverged, Interrupted


def main(plan_file: str) -> None:
    from binwrn.configuration.prepare import prepare
    from binwrn.train.ddp import Plan

    # Ctrl-C, and on SLURM submitit's requeue signal, reach every process of the job; rank
    # zero handles them and ends this rank (docs/scale-out.md).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # rank zero says it all
    warnings.filterwarnings("ignore")

    plan = Plan.read(Path(plan_file))
    cfg = OmegaConf.create(plan.config)
    try:
        spec = prepare(cfg, checked=True)  # rank zero has accepted this config already
        from binwrn.train.fit import train_rank  # Lightning, not MLflow

        train_rank(spec, Path(plan_file))
    except (Diverged, Interrupted):
        sys.exit(0)  # all ranks stopped together; rank zero records why
    except BinwrnError as err:
        print(f"binwrn DDP rank: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1])
