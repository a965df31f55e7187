"""Where binwrn-run, binwrn-export, binwrn-eval, binwrn-sweep and binwrn-sensitivity start.

The other console scripts start in their own package, so that each loads only what it needs
(binwrn-report answers --help before MLflow and matplotlib load): binwrn-report in
report/cli.py, binwrn-bench in bench/cli.py, binwrn-bench-loader in bench/loader.py,
binwrn-server in tracking/server.py, binwrn-migrate in tracking/migrate.py and
binwrn-gpucheck in gpucheck/cli.py. pyproject.toml's [project.scripts] names them all, and
tests/test_entry_points.py holds this docstring to it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from binwrn.allocator import keep_freed_memory
from binwrn.configuration.checks import check_config, check_values
from binwrn.configuration.compose import compose, conf_dir
from binwrn.errors import BinwrnError, ConfigError, Diverged, Interrupted
from binwrn.process_exit import without_teardown
from binwrn.terminal import (
    console_note,
    print_text,
    show_config,
    show_error,
    show_result,
    show_settings,
    show_sweep_summary,
    show_warning,
)
from binwrn.tracking.credentials import credentials_out_of_overrides, redact_uri

_failed_jobs: list[str] = []
_jobs_in_process = 0  # a multirun's later jobs time their first step from their own start

# Libraries whose INFO lines (devices found, tables created, monitors started, checkpoint
# defaults) say nothing a user acts on: WARNING and above still show; verbose=true shows all.
CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "mlflow", "alembic")


def _quiet_libraries(verbose: bool) -> None:
    """Lightning logs through its own handler and Hydra's: keep one copy, drop the ads and,
    unless verbose, Lightning's and MLflow's INFO chatter (set where they log, after import:
    each sets its level when imported)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    if not verbose:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")


def _write_outcome(output_dir: Path, cfg: DictConfig, status: str, reason: str | None = None,
                   result: dict | None = None, job: dict | None = None) -> None:
    """outcome.json in the job's folder: what binwrn-sweep and the multirun table read back
    after the launcher (`job`: its number, overrides and start time)."""
    job = dict(job or {})
    seconds = time.time() - job.pop("started") if "started" in job else None
    outcome = {"job": cfg.sweep.job, "status": status, "reason": reason,
               "run_id": (result or {}).get("run_id"),
               "run_name": (result or {}).get("run_name"),
               "test_error_pct": (result or {}).get("test_final/error_pct"), **job,
               "seconds": seconds,
               # the run's recorded end: whoever waits for the process times its exit from it
               "ended_at": (result or {}).get("ended_at")}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "outcome.json").write_text(json.dumps(outcome, indent=2))


def _clock_start(job_started: float) -> float:
    """When this job's command-to-first-step clock starts: the process start for the first
    job of a process (its imports are the user's wait), the job's own start for later ones."""
    global _jobs_in_process
    _jobs_in_process += 1
    if _jobs_in_process > 1:
        return job_started
    import psutil

    return psutil.Process().create_time()


def _rank_command(hydra_cfg) -> list[str]:
    """`binwrn-run` for another rank of this job on this machine: the job's own overrides (a
    sweep's worker has no command line of its one job to re-run) and, of Hydra's, those that
    change what composes (binwrn-sweep's search path, another config name or folder)."""
    searched = [o for o in hydra_cfg.overrides.hydra
                if o.lstrip("+~").startswith("hydra.searchpath")]
    flags = [f"--config-name={hydra_cfg.job.config_name}"]
    flags += [f"--config-dir={source.path}" for source in hydra_cfg.runtime.config_sources
              if source.provider == "command-line" and source.schema == "file"]
    return [sys.executable, "-c", "from binwrn.cli import run; run()", *flags,
            *hydra_cfg.overrides.task, *searched]


@contextmanager
def _ranks(cfg: DictConfig, in_sweep: bool, hydra_cfg):
    """This process as one of several DDP ranks until its job ends, the process group open
    and the config agreed on by all ranks; None for a lone process. srun or torchrun started
    the ranks (train/cluster.py), or, `trainer=ddp` on one machine, this process is rank zero
    and starts the others now (train/local_ranks.py)."""
    from binwrn.configuration.parallel import check_launch, config_digest, uses_ddp, world_size
    from binwrn.configuration.trainer import trainer_args
    from binwrn.train.cluster import launched_processes

    launched = launched_processes()
    check_launch(cfg, launched)
    if launched is None and not uses_ddp(cfg):
        yield None
        return
    with ExitStack() as ending:
        if launched is None:
            from binwrn.train.local_ranks import local_ranks

            launched = ending.enter_context(local_ranks(world_size(cfg.trainer),
                                                        _rank_command(hydra_cfg)))
        else:
            if in_sweep and "submitit" not in str(hydra_cfg.launcher.get("_target_")):
                raise ConfigError(f"binwrn-run -m under {launched.kind} would run the whole "
                                  "sweep in every process: start one config per launch, or "
                                  "use binwrn-sweep --launcher slurm.")
            ending.callback(launched.disconnect)
        _quiet_libraries(bool(cfg.get("verbose", False)))  # before Lightning's connection lines
        launched.connect(trainer_args(cfg))
        launched.agree_on_config(config_digest(cfg))
        yield launched


def _said_by_rank_zero(err: BaseException) -> bool:
    """Whether rank zero prints this rank's error for it: ranks that binwrn started share rank
    zero's terminal, and it reports what all ranks refused or agreed on."""
    from binwrn.train.cluster import STARTED_BY_BINWRN, Refused

    return STARTED_BY_BINWRN in os.environ and isinstance(err, Refused | Diverged | Interrupted)


def _log_figure(run, work_dir: Path) -> None:
    """figures/curves.png on the run, before it closes (train's end-of-run hook); a figure
    that cannot be drawn costs a warning, never the trained run."""
    from binwrn.report.run_figure import log_curves  # matplotlib: only at the end

    try:
        log_curves(run.client, run.run_id, work_dir / "figures")
    except Exception as err:  # noqa: BLE001 (matplotlib and the store fail in many types)
        logging.getLogger("binwrn").warning("no figures/curves.png for the run: %s", err)


def _job(cfg: DictConfig, launched, leader: bool, verbose: bool, output_dir: Path,
         clock_start: float, job: dict, writes_to: Path) -> dict | None:
    """Prepare and train one job (rank zero, or a lone process: its result), or follow rank
    zero's run (another rank: None)."""
    from binwrn.configuration.prepare import prepare

    preparing = time.perf_counter()
    if launched is None:  # bad data is refused before the slow imports
        spec = prepare(cfg, checked=True)
    else:  # refused on every rank when any rank cannot build it
        spec = launched.run_together(lambda: prepare(cfg, checked=True),
                                     "Preparing the config")
    startup = {"startup/data": time.perf_counter() - preparing}  # train/phase_clock.py
    if leader:
        show_settings(spec.identity.name, cfg, spec.trainer.precision, output_dir,
                      job["number"], spec.identity.params.get("data.val_split"))
        for warning in spec.warnings:
            show_warning(warning)
    from binwrn.train.lean_imports import import_lightning

    importing = time.perf_counter()
    import_lightning()  # without torchmetrics' torchvision, scipy and matplotlib
    if not leader:  # learns the run from rank zero and trains with it; writes nothing
        from binwrn.train.fit import follow

        _quiet_libraries(verbose)
        follow(spec, launched)
        return None
    from binwrn.train.run import train  # Lightning + MLflow: most of the start-up

    startup["startup/imports"] = time.perf_counter() - importing
    _quiet_libraries(verbose)  # after MLflow's import, which sets its loggers' levels
    with launched.leading() if launched is not None else nullcontext():
        return train(spec, output_dir, started_at=clock_start, launched=launched,
                     writes_to=writes_to, at_end=_log_figure, startup=startup)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _run_job(cfg: DictConfig) -> float | None:
    started = time.time()
    keep_freed_memory()  # here: the job may run in a sweep's worker process (allocator.py)
    clock_start = _clock_start(started)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode.name == "MULTIRUN"
    verbose = bool(cfg.get("verbose", False))
    job = {"number": hydra_cfg.job.num if in_sweep else None,
           "overrides": list(hydra_cfg.overrides.task), "started": started}
    from binwrn.train.cluster import rank_from_environment

    leader = rank_from_environment() == 0  # under srun/torchrun rank zero writes, says it all
    if verbose and leader:
        show_config(redact_uri(OmegaConf.to_yaml(cfg, resolve=True)))
    try:
        if in_sweep:  # a single run's config was checked before its folder was made
            check_config(cfg)
        with _ranks(cfg, in_sweep, hydra_cfg) as launched:
            result = _job(cfg, launched, leader, verbose, output_dir, clock_start, job,
                          Path(hydra_cfg.sweep.dir if in_sweep else hydra_cfg.run.dir))
        if result is None:  # a rank other than zero
            return None
    except (BinwrnError, Diverged, Interrupted) as err:
        if not leader:
            if not _said_by_rank_zero(err):
                show_error(f"rank {rank_from_environment()}: {err}")
            if not in_sweep:
                sys.exit(2)
            return None
        show_error(str(err))
        _write_outcome(output_dir, cfg, "failed", str(err), job=job)
        if not in_sweep:
            sys.exit(2)
        if isinstance(err, Interrupted):  # stop means stop: no later job of this sweep starts
            show_error(f"job {hydra_cfg.job.num} stopped by a signal; the sweep's later jobs "
                       "are not started (the same command resumes them).")
            sys.exit(2)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {err}")
        return None
    except Exception as err:  # a bug in one job must not stop the other jobs of a sweep
        if not in_sweep:
            raise
        logging.getLogger("binwrn").exception("job %s crashed", hydra_cfg.job.num)
        reason = redact_uri(f"{type(err).__name__}: {err}")
        show_error(f"{reason} (traceback in {output_dir})")
        if leader:
            _write_outcome(output_dir, cfg, "failed", reason, job=job)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {reason}")
        return None
    _write_outcome(output_dir, cfg, "finished", result=result, job=job)
    show_result(result)
    return result["test_final/error_pct"]


class CheckConfig(Callback):
    """binwrn-run's one check of a single run's config (values and data), made on the config
    its Hydra app composed and before Hydra makes the run's folder (conf/config.yaml's
    hydra.callbacks lists it first). A multirun's jobs are each checked by `_run_job`."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if _SET_FULL_ERROR:  # composed: later errors are Hydra's to report again
            os.environ.pop(FULL_ERROR, None)
        job = copy.deepcopy(config)
        with open_dict(job):
            del job["hydra"]
        try:
            check_config(job)
        except BinwrnError as err:
            show_error(str(err))
            sys.exit(2)


# Hydra reports a composition error itself (exit 1, "+key" advice); with this set it raises
# it to `run`, which answers with a "did you mean" (binwrn/configuration/compose.py).
FULL_ERROR = "HYDRA_FULL_ERROR"
_SET_FULL_ERROR = False


def _check_first(argv: list[str]) -> list[str] | None:
    """`--help`, and the checks of a multirun's keys, before torch loads; the overrides whose
    composition error `run` is to explain (None: Hydra's business, or a multirun, whose keys
    are checked here for every job)."""
    from hydra._internal.utils import get_args_parser

    from binwrn.configuration.checks import check_command_line
    from binwrn.configuration.compose import parse_overrides
    from binwrn.configuration.run_help import run_help

    args = get_args_parser().parse_args(argv)  # Hydra's own flags, as hydra.main reads them
    if args.help:
        print_text(run_help(conf_dir()))
        sys.exit(0)
    if (args.hydra_help or args.shell_completion or args.info or args.config_path
            or args.config_name or args.config_dir or args.experimental_rerun):
        return None  # Hydra's business (another config tree, or no job at all)
    # A multirun's values are each job's own business: one bad job fails alone while the
    # others run (its job checks them first thing).
    try:
        if args.multirun:
            check_command_line(args.overrides, multirun=True, values=False)
            return None
        parse_overrides(args.overrides)
    except BinwrnError as err:
        show_error(str(err))
        sys.exit(2)
    return args.overrides


def _composed_once(overrides: list[str] | None) -> None:
    """`_run_job` under Hydra, which composes the config (once) and runs the job; a
    composition error of `overrides` is one sentence with a "did you mean"."""
    global _SET_FULL_ERROR
    if overrides is None or os.environ.get(FULL_ERROR):
        _run_job()
        return
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from binwrn.configuration.compose import composition_error

    os.environ[FULL_ERROR], _SET_FULL_ERROR = "1", True
    try:
        _run_job()
    except (HydraException, OmegaConfBaseException) as err:
        if os.environ.get(FULL_ERROR) is None:  # raised by the job, after composition
            raise
        show_error(str(composition_error(overrides, err)))
        sys.exit(2)
    finally:
        os.environ.pop(FULL_ERROR, None)


@without_teardown  # the run's end is recorded: the user waits for nothing more
def run() -> None:
    """`binwrn-run [overrides]`: train and track one config, or a Hydra `-m` sweep."""
    sys.argv[1:] = credentials_out_of_overrides(sys.argv[1:])  # before Hydra records them
    overrides = _check_first(sys.argv[1:])
    from binwrn.train.cluster import (
        STARTED_BY_BINWRN,
        follower_hydra_overrides,
        started_as_follower,
    )

    if started_as_follower(sys.argv[1:]):  # a rank > 0: rank zero's folder only
        sys.argv += follower_hydra_overrides()
        if STARTED_BY_BINWRN in os.environ:
            from binwrn.train.local_ranks import leave_signals_to_rank_zero

            leave_signals_to_rank_zero()
    _composed_once(overrides)
    if _failed_jobs:
        show_error(f"{len(_failed_jobs)} job(s) failed: " + "; ".join(_failed_jobs))
        sys.exit(1)


def _export_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="binwrn-export",
        description="Pack a trained 1-bit WRN into a .bwn file (and/or ONNX), check it "
                    "against the trained model, report its size.",
        epilog="examples: binwrn-export <run id> --out wrn.bwn --onnx wrn.onnx | "
               "binwrn-export <run id> --qonnx | "
               "binwrn-export outputs/runs/<dir>/checkpoints/final.ckpt --out wrn.bwn | "
               "binwrn-export --size-only model.depth=20 model.width=10 dataset=cifar100")
    parser.add_argument("items", nargs="*", metavar="SOURCE [key=value ...]",
                        help="a run id or checkpoint file, then overrides of its config such "
                             "as data.root=...; with --size-only, config overrides only")
    parser.add_argument("--out", type=Path, help="write the packed model here (.bwn)")
    parser.add_argument("--onnx", type=Path, nargs="?", const=AUTO_ONNX, metavar="FILE",
                        help="write the ONNX inference graph here (without FILE: beside "
                             "--out; with --register, also logged as an MLflow onnx model)")
    parser.add_argument("--qonnx", type=Path, nargs="?", const=AUTO_ONNX, metavar="FILE",
                        help="write a QONNX model here (1-bit weights as BipolarQuant nodes, "
                             "for FINN and hls4ml; without FILE: beside --out, else "
                             "<run id>.qonnx.onnx; with --register, also logged on the model "
                             "version)")
    parser.add_argument("--register", metavar="NAME",
                        help="log the packed model on its run as an MLflow Model (a pyfunc "
                             "that runs ONNX Runtime on the graph it builds from the .bwn) and "
                             "register it as a version of NAME")
    parser.add_argument("--alias", help="with --register: point this alias (e.g. champion) "
                                        "at the new version")
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
    if not args.size_only and args.out is None and args.onnx is None and \
            args.qonnx is None and not args.register:
        parser.error("give --out FILE.bwn, --onnx FILE.onnx, --qonnx and/or --register NAME")
    if args.alias and not args.register:
        parser.error("--alias needs --register NAME")
    if args.onnx == AUTO_ONNX and args.out is None and not args.register:
        parser.error("give --onnx a FILE, or --out FILE.bwn to write it beside")
    if args.onnx and args.onnx != AUTO_ONNX and args.onnx == args.qonnx:
        parser.error("--onnx and --qonnx name the same file: give them two names")
    for option in ("onnx", "qonnx"):
        path = getattr(args, option)
        if path and "=" in path.name:
            parser.error(f"--{option} took {path} as its file: put key=value overrides before "
                         "the options")
    return args


AUTO_ONNX = Path("<auto>")  # --onnx without a file name


def _export_files(args: argparse.Namespace, tmp: Path, source_name: str
                  ) -> tuple[Path | None, Path | None, Path | None]:
    """(.bwn, .onnx, QONNX) paths: as given; beside --out for a bare --onnx or --qonnx; in
    `tmp` where only the registered model needs them; a bare --qonnx alone writes
    `<source_name>.qonnx.onnx` here."""
    from binwrn.export.job import QONNX_SUFFIX

    out = args.out or (tmp / "model.bwn" if args.register else None)
    onnx, qonnx = args.onnx, args.qonnx
    if onnx == AUTO_ONNX:
        onnx = (args.out or tmp / "model.bwn").with_suffix(".onnx")
    if qonnx == AUTO_ONNX:
        qonnx = out.with_name(out.stem + QONNX_SUFFIX) if out else Path(source_name +
                                                                         QONNX_SUFFIX)
    return out, onnx, qonnx


def export() -> None:
    """`binwrn-export SOURCE --out F.bwn [--onnx F.onnx] [--qonnx [F]]`, or `--size-only
    [overrides]`."""
    args = _export_args()
    try:
        from binwrn.export import job, report
        from binwrn.export.source import load_source

        if args.size_only:
            from binwrn.configuration.build import build_model
            from binwrn.configuration.identity import net_name
            from binwrn.configuration.stored import run_config

            cfg = compose(args.items)
            check_values(cfg)  # model.width=100000 was an allocator error for 92 TB
            summary, layout = job.size_only(build_model(cfg), run_config(cfg))
            if args.markdown:
                print(report.size_report_markdown(summary, layout), end="")
            else:
                m = cfg.model
                net = f"WRN-{m.depth}-{m.width}" if "width" in m else net_name(m)
                report.show_size_report(summary, layout, f"{net} {cfg.dataset.name}, "
                                        f"{m.bits}-bit (sizes only)")
            return
        if args.register:
            from binwrn.export import mlflow_model

            mlflow_model.check_names(args.register, args.alias)  # before the slow part
        from binwrn.configuration.stored import stored_run_config

        source = load_source(args.items[0], stored_run_config(args.items[1:]),
                             args.tracking_uri, args.config)
        if args.register and not source.run_id:
            raise ConfigError("--register logs the model on the run it came from: give the "
                              "run id instead of a checkpoint file.")
        with tempfile.TemporaryDirectory(prefix="binwrn-export-") as tmp:
            out, onnx, qonnx = _export_files(args, Path(tmp),
                                             source.run_id or Path(args.items[0]).stem)
            result = job.export_model(source, out, onnx, args.check_images, qonnx)
            registered = args.register and mlflow_model.register(
                source, result, out, args.register, args.alias, onnx, qonnx)
            for name in ("out", "onnx", "qonnx", "report"):  # temporary files are gone after this
                path = getattr(result, name)
                if path is not None and Path(tmp) in path.parents:
                    setattr(result, name, None)
            if source.run_id and not args.no_log:
                job.log_export(source, result)
    except BinwrnError as err:
        show_error(str(err), "binwrn-export")
        sys.exit(2)
    report.show_size_report(result.summary, result.layout, f"binwrn-export: {source.label}")
    report.show_export(result)
    if registered:
        report.show_registered(registered)


def _eval_args() -> argparse.Namespace:
    from binwrn.export.evaluate import RUNTIMES

    parser = argparse.ArgumentParser(
        prog="binwrn-eval", description="Accuracy of a packed .bwn model on a whole test set.",
        epilog="example: binwrn-eval wrn.bwn dataset=cifar10 data.root=/data/cifar10")
    parser.add_argument("file", type=Path, help="a .bwn file written by binwrn-export (with "
                        "--runtime qonnx: the QONNX file of binwrn-export --qonnx)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides (default: the data set and test_limit the run "
                             "was measured with)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--json", type=Path, help="also write the result here as JSON")
    return parser.parse_args()


def evaluate() -> None:
    """`binwrn-eval FILE.bwn [overrides] [--runtime torch|numpy|onnx]`, or `binwrn-eval
    FILE.qonnx.onnx --runtime qonnx`."""
    args = _eval_args()
    try:
        from binwrn.configuration.stored import run_config
        from binwrn.export.evaluate import default_overrides, evaluate_packed
        from binwrn.export.format import read_packed, write_bytes
        from binwrn.export.report import show_evaluation

        if args.runtime == "qonnx":
            from binwrn.export.qonnx_export import read_qonnx

            packed = read_qonnx(args.file)
        else:
            packed = read_packed(args.file)
        cfg = compose(default_overrides(packed.header, args.overrides))
        # data.test_limit=-5 evaluated no image and said 100 % error; the net is the file's
        check_values(cfg, only=("data.", "dataset."))
        result = evaluate_packed(packed, run_config(cfg), args.runtime, str(args.file))
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
        from binwrn.configuration.compose import sweeps_dir
        from binwrn.sweeps.driver import SweepRequest, check_request, run_sweep
        from binwrn.sweeps.spec import load_sweep
        from binwrn.tracking.store import ui_link

        args.overrides = credentials_out_of_overrides(args.overrides)
        launcher, overrides = _launcher_overrides(args)
        request = SweepRequest(load_sweep(args.sweep, sweeps_dir()), smoke=args.smoke,
                               force=args.force, launcher=launcher, overrides=overrides)
        check_request(request)
        if args.dry_run:
            from binwrn.sweeps.driver import preview

            print("\n".join(preview(request)))
            return
        out = Path("reports") / request.spec.name
        report = None if args.no_report else (lambda uri, pid: _report_on_parent(uri, pid, out))
        parent_id, outcomes, _ = run_sweep(request, before_close=report)
    except BinwrnError as err:
        show_error(str(err), "binwrn-sweep")
        sys.exit(2)
    show_sweep_summary(request.spec.name, outcomes, parent_id, ui_link())
    if any(o.status in ("failed", "not run") for o in outcomes):
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
        cfg = compose(credentials_out_of_overrides(args.overrides))
        from binwrn.configuration.sensitivity import sensitivity_spec

        spec, fresh = sensitivity_spec(cfg, args.val_size)  # refused before the slow imports
        from binwrn.train.lean_imports import import_lightning

        import_lightning()
        from binwrn.train.sensitivity import sensitivity as rank_layers  # Lightning: slow

        _quiet_libraries(bool(cfg.get("verbose", False)))
        record = rank_layers(spec, fresh, args.out)
    except BinwrnError as err:
        show_error(str(err), "binwrn-sensitivity")
        sys.exit(2)
    console_note(f"ranking of {len(record['layers'])} layers written to {args.out} "
                 f"(MLflow run {record['run_id']}); ascend: {', '.join(record['ascend'])}")
