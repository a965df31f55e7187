"""Train one configuration end to end and record it in MLflow (the body of `binwrn-run`).

Order matters for failures: everything a user can get wrong (config values, data) is built
and checked before the MLflow run exists, so bad input never leaves a half run; after that,
any error marks the run FAILED with its reason.

Under `trainer=ddp` this process is rank zero: it alone decides (resume point, output folder)
and writes (MLflow, checkpoints); the other ranks run the same steps (`fit.py`) in lockstep,
from its plan on one machine (`ddp_rank.py`, train/ddp.py) or, where the cluster started
every rank (srun, torchrun), from what it broadcasts (train/cluster.py).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from binwrn.config import (
    Prepared,
    config_hash,
    curated_params,
    net_name,
    network_key,
    run_name,
)
from binwrn.models import size_summary
from binwrn.tracking.callback import with_error_pct
from binwrn.tracking.provenance import provenance_tags
from binwrn.tracking.run import TrackedRun, find_resumable_run
from binwrn.tracking.sensitivity_runs import LAYER_NUMBER_TAG, NET_TAG, NETWORK_TAG
from binwrn.tracking.store import ui_link
from binwrn.train.checkpoints import OutputLock, resumable_checkpoint
from binwrn.train.cluster import Launched
from binwrn.train.data_parallel import batch_rule, world_size
from binwrn.train.ddp import Plan, ddp_session
from binwrn.train.fit import build, fit_and_test, uses_ddp
from binwrn.train.layer_order import binarizable_names


def _log_config(run: TrackedRun, cfg: DictConfig, output_dir: Path) -> None:
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")
    run.log_folder(output_dir / ".hydra", "hydra")  # config.yaml, hydra.yaml, overrides.yaml


def _sweep_tags(cfg: DictConfig) -> dict[str, str]:
    """Tags that nest a sweep's job under the sweep's parent run in the MLflow UI."""
    s = cfg.sweep
    if not s.parent_run_id:
        return {}
    return {"mlflow.parentRunId": s.parent_run_id, "binwrn.sweep": s.name,
            "binwrn.sweep_job": s.job, "binwrn.smoke": str(bool(s.smoke)).lower()}


def _network_tags(cfg: DictConfig, prepared: Prepared) -> dict[str, str]:
    """The net, and for a single-layer run its layer's number (paper 3 numbers layers 1..L
    in forward order, spec 3.6): what `iterative.ranking=store` and reports read."""
    tags = {NETWORK_TAG: network_key(cfg), NET_TAG: net_name(cfg.model)}
    if OmegaConf.select(cfg, "iterative.order", default="none") == "single":
        number = binarizable_names(prepared.model).index(cfg.iterative.layer) + 1
        tags[LAYER_NUMBER_TAG] = str(number)
    return tags


def _ddp_tags(cfg: DictConfig, launched: Launched | None = None) -> dict[str, str]:
    if not uses_ddp(cfg):
        return {}
    return {"binwrn.world_size": str(world_size(cfg.trainer)),
            "binwrn.num_nodes": str(cfg.trainer.get("num_nodes", 1)),
            "binwrn.started_by": launched.kind if launched else "binwrn",
            "binwrn.batch_rule": batch_rule(cfg),
            "binwrn.sync_batchnorm": str(bool(cfg.trainer.get("sync_batchnorm"))).lower()}


def _resume_point(cfg: DictConfig, uri: str, digest: str) -> tuple[str | None, Path | None]:
    """The unfinished run of this exact config and its last checkpoint, when `resume` is on."""
    if not cfg.resume:
        return None, None
    found = find_resumable_run(uri, cfg.tracking.experiment, digest)
    checkpoint = resumable_checkpoint(found[1]) if found else None
    return (found[0], checkpoint) if checkpoint else (None, None)


def train(cfg: DictConfig, prepared: Prepared, output_dir: Path, show_progress: bool = True,
          launched: Launched | None = None):
    """Fit (or resume), recompute BN statistics, test on the whole test set. `launched`:
    this process is rank zero of ranks a cluster started (train/cluster.py)."""
    started = time.perf_counter()
    sizes = size_summary(prepared.model)
    digest = config_hash(cfg)
    resume_id, checkpoint = _resume_point(cfg, prepared.tracking_uri, digest)
    # A resumed run keeps writing checkpoints where it started; this invocation's own Hydra
    # folder still gets its log and config.
    work_dir = checkpoint.parent.parent if checkpoint else output_dir
    plan = None
    if uses_ddp(cfg) and launched is None:  # what the other ranks need, decided once, here
        plan = Plan(OmegaConf.to_container(cfg, resolve=True),
                    str(checkpoint) if checkpoint else None, str(work_dir)).write(work_dir)
    parts = build(cfg, prepared, work_dir, show_progress, plan, launched)  # before the run
    tags = {**provenance_tags(cfg.trainer.accelerator), "binwrn.config_hash": digest,
            **_network_tags(cfg, prepared),
            "binwrn.output_dir": str(work_dir), **_sweep_tags(cfg), **_ddp_tags(cfg, launched),
            "binwrn.restarts": ",".join(str(e) for e in range(1, cfg.trainer.max_epochs)
                                        if prepared.schedule.restarts_at(e))}
    t = cfg.tracking
    with OutputLock(work_dir), TrackedRun(
        prepared.tracking_uri, t.experiment, t.artifact_root, run_name(cfg), tags,
        curated_params(cfg), t.system_metrics_interval, resume_run_id=resume_id,
    ) as run:
        parts.to_mlflow.run = run
        if launched is not None:  # the run, its folder and checkpoint, to the other ranks
            launched.announce_run(run.run_id, work_dir, checkpoint)
        if run.resumed:
            run.client.set_tag(run.run_id, "binwrn.resumed_by", str(output_dir))
            for key, value in {**_sweep_tags(cfg), **_ddp_tags(cfg, launched)}.items():
                run.client.set_tag(run.run_id, key, value)  # e.g. nests under a new sweep
        else:
            _log_config(run, cfg, output_dir)
            run.log_metrics(sizes.metrics(), step=0)
            run.log_json(sizes.as_dict(), "model_summary.json")
            run.log_text(sizes.as_markdown(), "model_summary.md")
            if prepared.binarization_order:  # the resolved order (random, ranked or given)
                run.log_json({"order": list(prepared.binarization_order),
                              "layers": binarizable_names(prepared.model),  # forward order
                              "epochs_per_layer": cfg.iterative.epochs_per_layer},
                             "iterative/order.json")
        with ddp_session(parts.trainer) if plan else nullcontext():
            scores, extra, final = fit_and_test(cfg, prepared, parts, checkpoint, work_dir)
        if extra:  # 25-crop test, held-out split
            run.log_metrics(extra, step=parts.trainer.current_epoch)
        if t.log_checkpoint:
            run.log_artifact(final, "checkpoints")
        wall = time.perf_counter() - started
        run.log_metrics({"time/wall_s": wall, **parts.clock.metrics()},
                        step=parts.trainer.current_epoch)
    return {
        **sizes.metrics(), **with_error_pct(dict(scores)),
        "test_images": len(parts.data.test_set),
        "run_name": run.run_name, "run_id": run.run_id, "tracking_uri": run.uri,
        "output_dir": str(work_dir), "wall_s": wall, "resumed": run.resumed,
        "ui_link": ui_link(experiment_id=run.experiment_id), **extra,
    }
