"""The body of binwrn-export: pack, read back, check the logits, write, log on the run.

The check runs on what a reader of the file gets: the packed bytes are decoded again, an
inference model is rebuilt from them, and its logits on real test images must equal the
trained model's in eval mode up to float round-off (paper-spec 1.7); otherwise nothing is
written. The ONNX graph is built from the same decoded file and checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
from torch import nn

from binwrn.data.loading import eval_batches, load_data
from binwrn.errors import ConfigError, DataError
from binwrn.export.format import FileLayout, decode, encode, write_bytes
from binwrn.export.pack import PackableNet, pack_wrn, rebuild_wrn, torch_logits, zero_weights
from binwrn.export.report import size_report_markdown
from binwrn.export.run_config import RunConfig
from binwrn.export.source import Source, packable_net
from binwrn.models import SizeSummary, size_summary
from binwrn.models.layer_order import binarizable_names, fully_binary_warning

QONNX_SUFFIX = ".qonnx.onnx"  # what `--qonnx` without a file name writes
ROUND_OFF = 1e-4  # relative to the largest logit; a wrong bit or BN value moves far more


@dataclass
class ExportResult:
    summary: SizeSummary
    layout: FileLayout
    out: Path | None = None
    onnx: Path | None = None
    onnx_bytes: int = 0
    qonnx: Path | None = None
    qonnx_bytes: int = 0
    qonnx_binary: int = 0  # convs whose weight enters as BipolarQuant (qonnx: BIPOLAR)
    checks: dict[str, float] = field(default_factory=dict)  # max |logit difference|
    check_images: int = 0
    zero_weights: int = 0
    logged_on: str | None = None
    report: Path | None = None


def check_logits(expected: np.ndarray, got: np.ndarray, what: str) -> float:
    """Max |difference|; raises DataError beyond float round-off."""
    diff = float(np.abs(expected - got).max()) if expected.size else 0.0
    tolerance = ROUND_OFF * max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    if not np.isfinite(diff) or diff > tolerance:
        raise DataError(f"The {what} logits differ from the trained model's by {diff:.3g} "
                        f"(round-off allows {tolerance:.3g}) on {len(expected)} test images, "
                        "so nothing was written: please report this as a bug.")
    return diff


def check_images(config: RunConfig, count: int) -> np.ndarray:
    """Up to `count` real test images of the run's data set (a class-balanced subset; for
    ImageNet, their centre crops)."""
    limit = config.data.test_limit
    _, test = load_data(replace(config.data, test_limit=count if limit is None
                                else min(limit, count)))
    return np.concatenate(list(eval_batches(test, config.crops)))


def _source_info(source: Source) -> dict:
    try:
        version = metadata.version("binwrn")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info = {"from": source.label, "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "binwrn_version": version}
    if source.run_id:
        info |= {"run_id": source.run_id, "tracking_uri": source.tracking_uri}
    return info | {k.replace("/", "_"): v for k, v in source.recorded.items()}


def check_packable(config: RunConfig) -> None:
    """The .bwn topologies are the CIFAR-style WRN's and paper 1's ImageNet 18-2.5's
    (docs/packed-format.md); paper 3's nets have none."""
    packable_net(config)


def trained_model(source: Source, kwargs: dict) -> PackableNet:
    """The model as trained: weights, BN statistics and which layers were binary."""
    model = packable_net(source.config)(**kwargs)
    try:
        model.load_state_dict(source.state_dict)
    except RuntimeError as err:
        raise DataError(f"The weights of {source.label} do not fit its config "
                        f"({str(err).splitlines()[-1].strip()}): pass the config of the run "
                        "that wrote them with --config.") from None
    check_binary_state(source, model)
    return model.eval()


def check_binary_state(source: Source, model: PackableNet) -> None:
    """A checkpoint from before binwrn stored which layers are binary loads as all binary,
    which is right unless its config trained layer by layer and stopped before the end."""
    if any(key.endswith(".binary_active") for key in source.state_dict):
        return
    trained = source.config
    order = trained.iterative_order
    if order == "none":
        return
    layers = len(binarizable_names(model))
    unfinished = (layers > 1 if order == "single" else fully_binary_warning(
        layers, trained.epochs_per_layer, trained.max_epochs) is not None)
    if unfinished:
        raise DataError(f"{source.label} was saved before binwrn stored which layers are "
                        f"binary, and its schedule (iterative.order={order}) had not binarized "
                        f"all {layers} layers when training stopped, so its packed form is "
                        "unknown: train it again with this binwrn to export it.")


def export_model(source: Source, out: Path | None, onnx_path: Path | None,
                 n_images: int = 100, qonnx_path: Path | None = None) -> ExportResult:
    """Pack `source`, verify the file's logits (and ONNX's, QONNX's), then write what was
    asked: nothing unless every check passed."""
    check_packable(source.config)
    kwargs = source.model_kwargs()
    model = trained_model(source, kwargs)
    blob, layout = encode(pack_wrn(model, kwargs, source.config.data_info(),
                                   _source_info(source)))
    unpacked = decode(blob, "the packed model")  # exactly what a reader of the file gets
    images = check_images(source.config, n_images)
    expected = torch_logits(model, images)
    result = ExportResult(size_summary(model), layout, check_images=len(images),
                          zero_weights=zero_weights(model))
    result.checks["packed"] = check_logits(
        expected, torch_logits(rebuild_wrn(unpacked), images), "packed model's")
    onnx_graph = qonnx_graph = None
    if onnx_path is not None:
        from binwrn.export.onnx_export import onnx_logits, to_onnx

        onnx_graph = to_onnx(unpacked)
        result.checks["onnx"] = check_logits(expected, onnx_logits(onnx_graph, images),
                                             "ONNX model's")
    if qonnx_path is not None:
        qonnx_graph = _checked_qonnx(unpacked, images, expected, result)
    if onnx_graph is not None or qonnx_graph is not None:  # every check passed: write
        from binwrn.export.onnx_export import save_onnx

        if onnx_graph is not None:
            result.onnx, result.onnx_bytes = onnx_path, save_onnx(onnx_graph, onnx_path)
        if qonnx_graph is not None:
            result.qonnx, result.qonnx_bytes = qonnx_path, save_onnx(qonnx_graph, qonnx_path)
    if out is not None:
        write_bytes(out, blob)
        result.out = out
    saved = out or onnx_path or qonnx_path
    if saved is not None:
        stem = saved.name.removesuffix(QONNX_SUFFIX) if saved.name.endswith(QONNX_SUFFIX) \
            else saved.stem
        result.report = saved.with_name(stem + ".size_report.md")
        write_bytes(result.report, size_report_markdown(result.summary, layout,
                                                        exported_files(result)).encode())
    return result


def _checked_qonnx(unpacked, images: np.ndarray, expected: np.ndarray, result: ExportResult):
    """The QONNX graph of the decoded file, after qonnx's own checks (qonnx_export.check_qonnx)
    and its executor's logits against the trained model's and the NumPy runtime's."""
    from binwrn.export.numpy_runtime import NumpyWRN
    from binwrn.export.qonnx_export import check_qonnx, to_qonnx

    graph = to_qonnx(unpacked, images.shape[2:])
    checked = check_qonnx(graph, unpacked, images)
    result.checks["qonnx"] = check_logits(expected, checked.logits, "QONNX model's")
    result.checks["qonnx_vs_numpy"] = check_logits(NumpyWRN(unpacked).logits(images),
                                                   checked.logits, "QONNX model's (against "
                                                   "the NumPy runtime's)")
    result.qonnx_binary = checked.binary_weights
    return graph


def exported_files(result: ExportResult) -> dict[str, int]:
    """The graph files written beside the .bwn, by kind: bytes."""
    return {kind: n for kind, path, n in (("ONNX", result.onnx, result.onnx_bytes),
                                          ("QONNX", result.qonnx, result.qonnx_bytes))
            if path is not None}


def log_export(source: Source, result: ExportResult) -> None:
    """Size tags and the report, .bwn and .onnx files as artifacts under export/."""
    from binwrn.tracking.lookup import log_on_run

    tags = {**result.summary.tags(), "export/file_bytes": str(result.layout.total)}
    if result.qonnx is not None:
        tags["export/qonnx_file_bytes"] = str(result.qonnx_bytes)
    files = [(p, "export") for p in (result.out, result.onnx, result.qonnx) if p is not None]
    log_on_run(source.tracking_uri, source.run_id, tags,
               {"export/size_report.md": size_report_markdown(result.summary, result.layout,
                                                              exported_files(result))},
               files)
    result.logged_on = source.run_id


def size_only(model: nn.Module, config: RunConfig) -> tuple[SizeSummary, FileLayout | None]:
    """Sizes of the (untrained) `model` that `config` describes, and the layout of its .bwn
    file; no layout where the model has nothing to pack (model.bits=32)."""
    try:
        check_packable(config)
        layout = encode(pack_wrn(model, config.model_kwargs, config.data_info()))[1]
    except ConfigError:
        layout = None
    return size_summary(model), layout
