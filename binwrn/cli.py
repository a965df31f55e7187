"""Console entry points (binwrn-run, binwrn-export, binwrn-eval), nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from binwrn.errors import BinwrnError, ConfigError, Diverged, Interrupted
from binwrn.terminal import show_config, show_error, show_result, show_warning


def _conf_dir() -> str:
    """conf/ at the top of a checkout, or the copy packed into an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise RuntimeError("binwrn's conf/ folder is missing from this installation.")


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


@hydra.main(version_base="1.3", config_path=_conf_dir(), config_name="config")
def _run_job(cfg: DictConfig) -> float | None:
    from binwrn.config import prepare

    hydra_cfg = HydraConfig.get()
    show_config(OmegaConf.to_yaml(cfg, resolve=True))
    try:
        prepared = prepare(cfg)  # bad values and data are refused before the slow imports
        for warning in prepared.warnings:
            show_warning(warning)
        from binwrn.train.run import train  # Lightning + MLflow: ~20 s on 2 cores

        _quiet_libraries()
        result = train(cfg, prepared, Path(hydra_cfg.runtime.output_dir))
    except (BinwrnError, Diverged, Interrupted) as err:
        show_error(str(err))
        if hydra_cfg.mode.name != "MULTIRUN":
            sys.exit(2)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {err}")
        return None
    show_result(result)
    return result["test/error_pct"]


def run() -> None:
    """`binwrn-run [overrides]`: train and track one config, or a Hydra `-m` sweep."""
    _run_job()
    if _failed_jobs:
        show_error(f"{len(_failed_jobs)} job(s) failed: " + "; ".join(_failed_jobs))
        sys.exit(1)


def _compose(overrides: list[str]) -> DictConfig:
    """The real config under conf/ with Hydra-style overrides, outside a Hydra app."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=_conf_dir(), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"The overrides {' '.join(overrides)} do not compose "
                          f"({str(err).splitlines()[0]}): fix or drop them.") from None


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
            cfg = _compose(args.items)
            summary, layout = job.size_only(cfg)
            if args.markdown:
                print(report.size_report_markdown(summary, layout), end="")
            else:
                m = cfg.model
                report.show_size_report(summary, layout, f"WRN-{m.depth}-{m.width} "
                                        f"{cfg.dataset.name}, {m.bits}-bit (sizes only)")
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
        cfg = _compose(default_overrides(packed.header, args.overrides))
        result = evaluate_packed(packed, cfg, args.runtime, str(args.file))
        if args.json:
            write_bytes(args.json, json.dumps(result, indent=2).encode())
    except BinwrnError as err:
        show_error(str(err), "binwrn-eval")
        sys.exit(2)
    show_evaluation(result)
