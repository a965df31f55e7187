"""Console entry points (binwrn-run, -export, -eval, -sweep, -sensitivity), nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from binwrn.conf_files import compose, conf_dir
from binwrn.errors import BinwrnError, ConfigError, Diverged, Interrupted
from binwrn.terminal import (
    console_note,
    show_config,
    show_error,
    show_result,
    show_sweep_summary,
    show_warning,
)

_failed_jobs: list[str] = []


def _quiet_libraries() -> None:
    """Lightning logs through its own handler and Hydra's: keep one copy, drop the ads."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=".*treespec.*")


def _write_outcome(output_dir: Path, cfg: DictConfig, status: str, reason: str | None = None,
                   result: dict | None = None) -> None:
    """outcome.json in the job's folder: what binwrn-sweep reads back after its launcher."""
    outcome = {"job": cfg.sweep.job, "status": status, "reason": reason,
               "run_id": (result or {}).get("run_id"),
               "test_error_pct": (result or {}).get("test/error_pct")}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "outcome.json").write_text(json.dumps(outcome, indent=2))


def _cluster_rank(cfg: DictConfig, in_sweep: bool):
    """This process as one of the ranks srun or torchrun started (train/cluster.py), its
    process group open and the config agreed on by all ranks; None for a lone process."""
    from binwrn.train.cluster import check_launch, launched_processes

    launched = launched_processes()
    check_launch(cfg, launched)
    if launched is not None:
        if in_sweep and "submitit" not in str(HydraConfig.get().launcher.get("_target_")):
            raise ConfigError(f"binwrn-run -m under {launched.kind} would run the whole sweep "
                              "in every process: start one config per launch, or use "
                              "binwrn-sweep --launcher slurm.")
        launched.connect(cfg)
        launched.agree_on_config(cfg)
    return launched


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _run_job(cfg: DictConfig) -> float | None:
    from binwrn.config import prepare

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode.name == "MULTIRUN"
    from binwrn.train.cluster import rank_from_environment

    leader = rank_from_environment() == 0  # under srun/torchrun rank zero writes, says it all
    launched = None
    try:
        launched = _cluster_rank(cfg, in_sweep)
        if leader:
            show_config(OmegaConf.to_yaml(cfg, resolve=True))
        if launched is None:
            prepared = prepare(cfg)  # bad values and data are refused before the slow imports
        else:  # refused on every rank when any rank cannot build it
            prepared = launched.run_together(lambda: prepare(cfg), "Preparing the config")
        for warning in prepared.warnings if leader else ():
            show_warning(warning)
        if not leader:  # learns the run from rank zero and trains with it; writes nothing
            from binwrn.train.cluster import follow

            _quiet_libraries()
            follow(cfg, prepared, launched)
            return None
        from binwrn.train.run import train  # Lightning + MLflow: ~20 s on 2 cores

        _quiet_libraries()
        with launched.leading() if launched is not None else nullcontext():
            result = train(cfg, prepared, output_dir, launched=launched)
    except (BinwrnError, Diverged, Interrupted) as err:
        if not leader:
            show_error(f"rank {rank_from_environment()}: {err}")
            if not in_sweep:
                sys.exit(2)
            return None
        show_error(str(err))
        _write_outcome(output_dir, cfg, "failed", str(err))
        if not in_sweep:
            sys.exit(2)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {err}")
        return None
    except Exception as err:  # a bug in one job must not stop the other jobs of a sweep
        if not in_sweep:
            raise
        logging.getLogger("binwrn").exception("job %s crashed", hydra_cfg.job.num)
        reason = f"{type(err).__name__}: {err}"
        show_error(f"{reason} (traceback in {output_dir})")
        if leader:
            _write_outcome(output_dir, cfg, "failed", reason)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {reason}")
        return None
    _write_outcome(output_dir, cfg, "finished", result=result)
    show_result(result)
    return result["test/error_pct"]


def run() -> None:
    """`binwrn-run [overrides]`: train and track one config, or a Hydra `-m` sweep."""
    from binwrn.train.cluster import follower_hydra_overrides, started_as_follower

    if started_as_follower(sys.argv[1:]):  # srun/torchrun rank > 0: rank zero's folder only
        sys.argv += follower_hydra_overrides()
    _run_job()
    if _failed_jobs:
        show_error(f"{len(_failed_jobs)} job(s) failed: " + "; ".join(_failed_jobs))
        sys.exit(1)


def _export_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="binwrn-export",
        description="Pack a trained 1-bit WRN into a .bwn file (and/or ONNX), check it "
                    "against the trained model, report its size.",
        epilog="examples: binwrn-export <run id> --out wrn.bwn --onnx wrn.onnx | "
               "binwrn-export outputs/runs/<dir>/checkpoints/final.ckpt --out wrn.bwn | "
               "binwrn-export --size-only model.depth=20 model.width=10 dataset=cifar100")
    parser.add_argument("items", nargs="*", metavar="SOURCE [key=value ...]",
                        help="a run id or checkpoint file, then overrides of its config such "
                             "as data.root=...; with --size-only, config overrides only")
    parser.add_argument("--out", type=Path, help="write the packed model here (.bwn)")
    parser.add_argument("--onnx", type=Path, help="write the ONNX inference graph here")
    parser.add_argument("--tracking-uri", help="the store the run id is in (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--config", help="the run's config, for a checkpoint outside its "
                        "Hydra output directory")
    parser.add_argument("--check-images", type=int, default=100,
                        help="test images the logit check uses (default 100)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the size report and files on the run")
    parser.add_argument("--size-only", action="store_true",
                        help="only report the sizes of the model the overrides describe")
    parser.add_argument("--markdown", action="store_true",
                        help="with --size-only: print the report as Markdown")
    args = parser.parse_args()
    if not args.size_only and not args.items:
        parser.error("give a run id or checkpoint file (or --size-only)")
    if not args.size_only and args.out is None and args.onnx is None:
        parser.error("give --out FILE.bwn and/or --onnx FILE.onnx")
    return args


def export() -> None:
    """`binwrn-export SOURCE --out F.bwn [--onnx F.onnx]`, or `--size-only [overrides]`."""
    args = _export_args()
    try:
        from binwrn.export import job, report
        from binwrn.export.source import load_source

        if args.size_only:
            cfg = compose(args.items)
            summary, layout = job.size_only(cfg)
            if args.markdown:
                print(report.size_report_markdown(summary, layout), end="")
            else:
                from binwrn.config import net_name

                m = cfg.model
                net = f"WRN-{m.depth}-{m.width}" if "width" in m else net_name(m)
                report.show_size_report(summary, layout, f"{net} {cfg.dataset.name}, "
                                        f"{m.bits}-bit (sizes only)")
            return
        source = load_source(args.items[0], args.tracking_uri, args.config, args.items[1:])
        result = job.export_model(source, args.out, args.onnx, args.check_images)
        if source.run_id and not args.no_log:
            job.log_export(source, result)
    except BinwrnError as err:
        show_error(str(err), "binwrn-export")
        sys.exit(2)
    report.show_size_report(result.summary, result.layout, f"binwrn-export: {source.label}")
    report.show_export(result)


def _eval_args() -> argparse.Namespace:
    from binwrn.export.evaluate import RUNTIMES

    parser = argparse.ArgumentParser(
        prog="binwrn-eval", description="Accuracy of a packed .bwn model on a whole test set.",
        epilog="example: binwrn-eval wrn.bwn dataset=cifar10 data.root=/data/cifar10")
    parser.add_argument("file", type=Path, help="a .bwn file written by binwrn-export")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (default: the data set and test_limit the run "
                             "was measured with)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--json", type=Path, help="also write the result here as JSON")
    return parser.parse_args()


def evaluate() -> None:
    """`binwrn-eval FILE.bwn [overrides] [--runtime torch|numpy|onnx]`."""
    args = _eval_args()
    try:
        from binwrn.export.evaluate import default_overrides, evaluate_packed
        from binwrn.export.format import read_packed, write_bytes
        from binwrn.export.report import show_evaluation

        packed = read_packed(args.file)
        cfg = compose(default_overrides(packed.header, args.overrides))
        result = evaluate_packed(packed, cfg, args.runtime, str(args.file))
        if args.json:
            write_bytes(args.json, json.dumps(result, indent=2).encode())
    except BinwrnError as err:
        show_error(str(err), "binwrn-eval")
        sys.exit(2)
    show_evaluation(result)


def _sweep_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="binwrn-sweep",
        description="Run a sweep from sweeps/ as one MLflow parent run with nested jobs; jobs "
                    "whose identical config already FINISHED are skipped.",
        epilog="examples: binwrn-sweep p1_fig6_ablation --smoke | binwrn-sweep p1_table1 "
               "--jobs 4 | binwrn-sweep p1_table1 --launcher slurm hydra.launcher.partition=gpu")
    parser.add_argument("sweep", help="a sweep name in sweeps/ or a path to a sweep YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="applied to every job (e.g. data.root=...); hydra/launcher=... "
                             "and hydra.launcher.* go to the launcher")
    parser.add_argument("--smoke", action="store_true",
                        help="shrink every job with the sweep's smoke overrides (minutes on "
                             "a CPU)")
    parser.add_argument("--force", action="store_true",
                        help="rerun every job, finished or not, as new runs")
    parser.add_argument("--jobs", type=int, default=1,
                        help="jobs at once on this machine (Hydra's joblib launcher)")
    parser.add_argument("--launcher", choices=("local", "slurm", "submitit_local"),
                        default="local",
                        help="slurm: submit each job with Hydra's submitit launcher "
                             "(conf/hydra/launcher/slurm.yaml); submitit_local: the same "
                             "launcher on this machine, one process per job")
    parser.add_argument("--no-report", action="store_true", help="skip the closing report")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the jobs and, with --launcher slurm, each job's SLURM "
                             "resources and #SBATCH lines; run and record nothing")
    return parser.parse_intermixed_args()


def _launcher_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(launcher overrides, job overrides) from the command line."""
    launcher = [o for o in args.overrides if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    jobs = [o for o in args.overrides if o not in launcher]
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs} is not allowed: use 1 or more.")
    if args.launcher != "local":
        launcher.insert(0, f"hydra/launcher={args.launcher}")
    elif args.jobs > 1:
        launcher[:0] = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    return launcher, jobs


def sweep() -> None:
    """`binwrn-sweep NAME [overrides] [--smoke] [--force] [--jobs N] [--launcher slurm]`."""
    args = _sweep_args()
    try:
        from binwrn.conf_files import sweeps_dir
        from binwrn.sweeps.driver import SweepRequest, check_request, run_sweep
        from binwrn.sweeps.spec import load_sweep
        from binwrn.tracking.store import ui_link

        launcher, overrides = _launcher_overrides(args)
        request = SweepRequest(load_sweep(args.sweep, sweeps_dir()), smoke=args.smoke,
                               force=args.force, launcher=launcher, overrides=overrides)
        check_request(request)
        if args.dry_run:
            from binwrn.sweeps.slurm import preview

            print("\n".join(preview(request)))
            return
        out = Path("reports") / request.spec.name
        report = None if args.no_report else (lambda uri, pid: _report_on_parent(uri, pid, out))
        parent_id, outcomes, _ = run_sweep(request, before_close=report)
    except BinwrnError as err:
        show_error(str(err), "binwrn-sweep")
        sys.exit(2)
    show_sweep_summary(request.spec.name, outcomes, parent_id, ui_link())
    if any(o.status == "failed" for o in outcomes):
        sys.exit(1)


def _report_on_parent(uri: str, parent_id: str, out: Path) -> None:
    """The sweep's report, written to `out` and logged on its parent; a problem is a warning."""
    from binwrn.report import report_sweep

    try:
        folder = report_sweep(uri, parent_id, out, log=True)
    except BinwrnError as err:
        show_warning(f"no report: {err}")
        return
    console_note(f"Report: {folder}/report.md (tables and figures, also on the parent run "
                 f"under report/); print it with binwrn-report --sweep {parent_id}")


def sensitivity() -> None:
    """`binwrn-sensitivity [overrides] --out ranking.json`: paper 3's per-layer ranking."""
    parser = argparse.ArgumentParser(
        prog="binwrn-sensitivity",
        description="Paper 3's sensitivity pre-training (spec 3.6): train once per 1-bit layer "
                    "with only that layer binary for trainer.max_epochs epochs, rank the "
                    "layers by accuracy on a validation split held out of the training "
                    "images (data.val_size), and write the ranking iterative.ranking reads.",
        epilog="example: binwrn-sensitivity model.width=4 trainer.max_epochs=30 "
               "--out ranking.json, then binwrn-run iterative.order=ascend "
               "iterative.ranking=ranking.json")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, as for binwrn-run")
    parser.add_argument("--val-size", type=int, default=None,
                        help="held-out validation images (default: data.val_size, else paper "
                             "3's 5000: 45k/5k CIFAR-10, 55k/5k MNIST)")
    parser.add_argument("--out", type=Path, default=Path("ranking.json"),
                        help="where the ranking JSON goes (default ranking.json)")
    args = parser.parse_args()
    try:
        cfg = compose(args.overrides)
        from binwrn.train.sensitivity import sensitivity as rank_layers  # Lightning: slow

        _quiet_libraries()
        record = rank_layers(cfg, args.val_size, args.out)
    except BinwrnError as err:
        show_error(str(err), "binwrn-sensitivity")
        sys.exit(2)
    console_note(f"ranking of {len(record['layers'])} layers written to {args.out} "
                 f"(MLflow run {record['run_id']}); ascend: {', '.join(record['ascend'])}")
