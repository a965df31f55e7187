"""Where a start of a config goes on from, decided once, with the process's one store client.

Resume is on by default (`resume: true`): the same command continues the newest unfinished
run of the same config hash from its last checkpoint, into the same MLflow run. What each
case does is docs/reliability.md's table: a resumable run is resumed; a run whose folder lies
outside the folders a resume may read is left alone and a fresh run starts; a run whose
checkpoint fails verification is marked FAILED (unresumable) and a fresh run starts; RUNNING
runs whose process is gone (ghosts) are marked KILLED, all but the one resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rich.markup import escape

from binwrn.terminal import console_note, show_warning
from binwrn.tracking.run import find_resumable_run, mark_dead_runs_killed, mark_unresumable
from binwrn.train.checkpoints import (
    OutputLock,
    UnusableCheckpoint,
    checkpoint_size_bound,
    resumable_checkpoint,
    verify_checkpoint,
)
from binwrn.train.spec import RunSpec


class ResumePoint(NamedTuple):
    run_id: str | None = None  # the run to resume; None: a fresh run
    checkpoint: Path | None = None  # its last.ckpt
    sha256: str | None = None  # that file's digest, as verified


FRESH = ResumePoint()


def output_root() -> Path:
    """The folder binwrn-run starts in: Hydra's `outputs/` and a relative `hydra.run.dir` lie
    under it."""
    return Path.cwd().resolve()


def resumable_from(folder: str | Path, writes_to: str | Path | None = None) -> bool:
    """Whether a resume may load checkpoints from `folder` (symbolic links resolved): it lies
    under `output_root()` or under `writes_to`, the folder this command itself writes to
    (an absolute hydra.run.dir or hydra.sweep.dir on a scratch disk). Anything else is
    refused: the store's `binwrn.output_dir` tag could name any file."""
    where = Path(folder).resolve()
    roots = [output_root()] + ([Path(writes_to).resolve()] if writes_to is not None else [])
    return any(where.is_relative_to(root) for root in roots)


def decide_resume(spec: RunSpec, client, writes_to: Path | None) -> ResumePoint:
    """The resume point of this start (FRESH for a new run), with the unresumable run and the
    ghosts of this config marked on the way; `client`: the process's one MlflowClient, which
    the tracked run then uses too."""
    point = _resume_point(spec, client, writes_to)
    _mark_ghosts(spec, client, keep=point.run_id)
    return point


def _resume_point(spec: RunSpec, client, writes_to: Path | None) -> ResumePoint:
    """The unfinished run of this exact config, its last checkpoint and that file's SHA-256,
    when `resume` is on and the checkpoint may be loaded: under the output root or the folder
    this command writes to (`writes_to`), not in use,
    its digest the one the run recorded, loadable with weights_only=True. A run whose
    checkpoint fails the last two is marked FAILED; either way a new run starts, saying so."""
    if not spec.checkpoints.resume:
        return FRESH
    found = find_resumable_run(client, spec.tracking.experiment, spec.identity.config_hash)
    if found is None:
        return FRESH
    if not resumable_from(found.output_dir, writes_to):
        where = f"{output_root()}, the folder this command started in" + (
            f", and {writes_to}, the folder it writes to" if writes_to else "")
        show_warning(escape(
            f"Not resuming run {found.run_id}: its output folder {found.output_dir} (tag "
            f"binwrn.output_dir) is outside {where}, and checkpoints are resumed only from "
            "under those; starting a new run."))
        return FRESH
    try:
        checkpoint = resumable_checkpoint(found.output_dir)
        if checkpoint is None:
            return FRESH
        sha256 = verify_checkpoint(checkpoint, found.digests,
                                   max_bytes=checkpoint_size_bound(spec.model))
    except UnusableCheckpoint as err:
        last = Path(found.output_dir) / "checkpoints" / "last.ckpt"
        reason = f"its checkpoint {last} cannot be resumed: {err}"
        mark_unresumable(client, found.run_id, reason)
        show_warning(escape(f"Run {found.run_id} is now marked FAILED because {reason}; "
                            "starting a new run of this config instead."))
        return FRESH
    return ResumePoint(found.run_id, checkpoint, sha256)


def _mark_ghosts(spec: RunSpec, client, keep: str | None) -> None:
    """RUNNING runs of this config left by a process that is gone become KILLED."""
    killed = mark_dead_runs_killed(client, spec.tracking.experiment,
                                   spec.identity.config_hash,
                                   lambda folder: OutputLock(folder).held_elsewhere(), keep)
    if killed:
        console_note(f"Marked {len(killed)} earlier run(s) of this config KILLED, their "
                     f"process gone without recording an end: {', '.join(killed)}.")
