"""Output folders: a Hydra callback that checks the output directory is writable before a
job starts (where checkpoints may be resumed from is train/resume.py's rule).

Hydra creates the run (or sweep) directory itself, outside binwrn's error handling, and
answers an unwritable one with a traceback; this check answers it with one sentence.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from binwrn.terminal import show_error


def unwritable_reason(folder: Path) -> str | None:
    """None when files can be created in `folder` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".binwrn-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _refuse_unwritable(folder: str, key: str) -> None:
    reason = unwritable_reason(Path(folder))
    if reason is not None:
        show_error(f"The output directory {key}={folder} cannot be written ({reason}): "
                   f"set {key} to a folder you can write to.")
        sys.exit(2)


class CheckOutputDirWritable(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _refuse_unwritable(config.hydra.sweep.dir, "hydra.sweep.dir")
