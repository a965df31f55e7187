"""Train one configuration end to end and record it in MLflow (the body of `binwrn-run`).

Order matters for failures: everything a user can get wrong (config values, data) is built
and checked before the MLflow run exists, so bad input never leaves a half run; after that,
any error marks the run FAILED with its reason.

Under `trainer=ddp` this process is rank zero: it alone decides (resume point, output folder)
and writes (MLflow, checkpoints); the other ranks run the same steps (`fit.py`) in lockstep,
from what it broadcasts (train/cluster.py), whether it started them itself on one machine
(train/local_ranks.py) or srun or torchrun started every rank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from binwrn.models import size_summary
from binwrn.models.layer_order import binarizable_names
from binwrn.tracking.credentials import redact_uri
from binwrn.tracking.metrics import FINAL, as_view, with_error_pct
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun
from binwrn.tracking.store import open_client, ui_link
from binwrn.train.checkpoints import EpochCheckpoints, OutputLock, remove_stale_partials
from binwrn.train.cluster import Launched
from binwrn.train.fit import build, fit_and_test
from binwrn.train.resume import decide_resume
from binwrn.train.spec import RunSpec


def _log_config(run: TrackedRun, spec: RunSpec, output_dir: Path) -> None:
    """The resolved config and Hydra's config.yaml, hydra.yaml, overrides.yaml, each with
    the passwords of the URIs in it masked (the files are readable by anyone with the UI)."""
    run.log_text(redact_uri(spec.identity.config_yaml), "config/resolved.yaml")
    for path in sorted((output_dir / ".hydra").glob("*.yaml")):
        run.log_text(redact_uri(path.read_text()), f"hydra/{path.name}")


def _ddp_tags(spec: RunSpec, launched: Launched | None = None) -> dict[str, str]:
    t = spec.trainer
    if not t.ddp:
        return {}
    return {"binwrn.world_size": str(t.world_size), "binwrn.num_nodes": str(t.num_nodes),
            "binwrn.started_by": launched.kind if launched else "binwrn",
            "binwrn.batch_rule": spec.batch.rule,
            "binwrn.sync_batchnorm": str(t.sync_batchnorm).lower()}


def restarts_tag(epochs: tuple[int, ...], most: int = 5000) -> str:
    """The restart epochs as `2,6,14`, cut to `most` characters with a closing `,...` (an
    MLflow tag holds 8,000; cycles of one epoch over 100,000 epochs would be 590,000)."""
    text = ",".join(map(str, epochs))
    return text if len(text) <= most else text[:text.rfind(",", 0, most - 4)] + ",..."


def train(spec: RunSpec, output_dir: Path, show_progress: bool = True,
          started_at: float | None = None, launched: Launched | None = None,
          writes_to: Path | None = None, startup: dict[str, float] | None = None,
          at_end: Callable[[TrackedRun, Path], None] | None = None):
    """Fit (or resume), recompute BN statistics, test on the whole test set. `started_at`
    (epoch seconds): where time/to_first_step_s counts from (default: the process start).
    `launched`: this process is rank zero of several (train/cluster.py).
    `writes_to`: the command's hydra.run.dir (hydra.sweep.dir under -m), which a resume may
    read from wherever it lies (default: `output_dir`). `startup`: seconds of the start-up
    phases the caller ran (train/phase_clock.py), logged with the run's own. `at_end(run,
    work_dir)`: what the entry point adds to the run before it is closed (binwrn-run: its
    figure), timed with the artifacts."""
    started = time.perf_counter()
    identity, t = spec.identity, spec.tracking
    client = open_client(t.uri)  # the process's one: resume, ghosts and the run share it
    resume_id, checkpoint, on_disk = decide_resume(spec, client, writes_to or output_dir)
    store_s = time.perf_counter() - started
    # A resumed run keeps writing checkpoints where it started; this invocation's own Hydra
    # folder still gets its log and config.
    work_dir = checkpoint.parent.parent if checkpoint else output_dir
    parts = build(spec, work_dir, show_progress, started_at, launched)  # before the run
    for phase, seconds in {**(startup or {}), "startup/store": store_s}.items():
        parts.clock.add(phase, seconds)
    tags = {**provenance_tags(spec.trainer.accelerator),
            "binwrn.config_hash": identity.config_hash, **identity.tags,
            "binwrn.output_dir": str(work_dir), **identity.sweep_tags,
            **_ddp_tags(spec, launched),
            "binwrn.restarts": restarts_tag(spec.schedule.restart_epochs(
                spec.trainer.max_epochs - 1))}
    # The precision the Trainer runs at (auto resolved), not the config's word for it.
    params = {**identity.params, "trainer.precision": parts.trainer.precision}
    opening = time.perf_counter()
    with OutputLock(work_dir), TrackedRun(
        t.uri, t.experiment, t.artifact_root, identity.name, tags,
        params, t.system_metrics_interval, resume_run_id=resume_id, client=client,
    ) as run:
        parts.clock.add("startup/store", time.perf_counter() - opening)
        parts.to_mlflow.run = run
        remove_stale_partials(work_dir / "checkpoints")  # the lock is ours: all are stale
        for callback in parts.trainer.callbacks:
            if isinstance(callback, EpochCheckpoints):  # each new last.ckpt's digest
                callback.record_digests, callback.on_disk = run.record_checkpoint_digests, on_disk
        if launched is not None:  # the run, its folder and checkpoint, to the other ranks
            launched.announce_run(run.run_id, work_dir, checkpoint)
        if run.resumed:
            run.set_tags({"binwrn.resumed_by": str(output_dir), **identity.sweep_tags,
                          **_ddp_tags(spec, launched)})  # e.g. nests under a new sweep
        else:
            _log_config(run, spec, output_dir)
            if spec.iterative.order:  # the resolved order (random, ranked or given)
                run.log_json({"order": list(spec.iterative.order),
                              "layers": binarizable_names(spec.model),  # forward order
                              "epochs_per_layer": spec.iterative.epochs_per_layer},
                             "iterative/order.json")
        with launched.training() if launched is not None else nullcontext():
            scores, extra, final = fit_and_test(spec, parts, checkpoint, work_dir)
        with parts.clock.timed("artifacts"):
            # Sized as trained: a layer-by-layer schedule stopped early leaves fp32 layers.
            sizes = size_summary(parts.classifier.model)
            run.set_tags(sizes.tags())  # constants, not curves: no one-point charts
            run.log_json(sizes.as_dict(), "model_summary.json")
            run.log_text(sizes.as_markdown(), "model_summary.md")
            if extra:  # 25-crop test, held-out split
                run.log_metrics(extra, step=parts.trainer.current_epoch)
            if t.log_checkpoint:
                run.log_artifact(final, "checkpoints")
            if at_end is not None:
                at_end(run, work_dir)
        wall = time.perf_counter() - started
        phases = {"time/wall_s": wall, **parts.clock.metrics()}
        run.log_metrics(phases, step=parts.trainer.current_epoch)
    ended_at = time.time()  # the run's end is recorded: what follows is the process's exit
    return {
        **sizes.metrics(), **with_error_pct(as_view(dict(scores), FINAL)),
        "test_images": len(parts.data.test_set),
        "run_name": run.run_name, "run_id": run.run_id, "tracking_uri": redact_uri(run.uri),
        "output_dir": str(work_dir), "wall_s": wall, "resumed": run.resumed,
        "phases": phases, "ended_at": ended_at,
        "ui_link": ui_link(experiment_id=run.experiment_id), **extra,
    }
