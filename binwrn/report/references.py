"""The papers' published numbers as reference runs (tracking/references.py stores them), read
from report/paper.py alone: every Table 1 and Table 2 cell with MNIST's points, the official
Keras and MATLAB learning curves at the SGDR cycle ends (step = epoch), and paper 2's table
with its one curve.

Each number goes under the key a binwrn run logs for the same measurement
(tracking/metrics.py): a final result under `test_final/*`; the Keras notebooks' curves, which
test with BN's running averages, under `test/*`; the MATLAB models' curves and MNIST's
points, measured with BN statistics recomputed (spec 1.4), under `test_recomputed/*`. Accuracy
is a fraction, as the runs log it; error is in percent, the paper's unit. Params are the
paper's settings under the runs' param names.
"""

from __future__ import annotations

from pathlib import Path

from binwrn.report import paper
from binwrn.tracking.metrics import ERROR_OF, FINAL, RECOMPUTED, TEST
from binwrn.tracking.references import Logged, Reference, log_references

NAMES = {"cifar10": "C10", "cifar100": "C100", "svhn": "SVHN", "imagenet32": "I32",
         "imagenet": "ImageNet", "mnist": "MNIST"}
CUTOUT = 18  # paper 1's 18x18 cutout, the "++" columns (spec 1.5.3)
# Paper 1's batch, and its SGDR schedule (spec 1.5.1-1.5.2); paper 2's shifted-ReLU nets train
# one 300-epoch cosine (spec 2.3).
PAPER1_RECIPE = {"data.batch_size": "125", "schedule.name": "sgdr"}
# Weight decay and whether BN learns its scale and offset, by data set (spec 1.5.4).
DATASET_RECIPE = {name: {"optim.weight_decay": decay, "bn.learn_affine": affine}
                  for name, decay, affine in (
                      ("cifar10", 5e-4, False), ("cifar100", 5e-4, False),
                      ("svhn", 5e-4, False), ("mnist", 5e-4, False),
                      ("imagenet32", 1e-4, True), ("imagenet", 1e-4, True))}


def _bits(bits: int) -> str:
    return "1-bit" if bits == 1 else "fp32"


def _params(bits: int, depth: int | float, width: int | float, dataset: str, cutout: bool,
            epochs: int, **more: object) -> dict[str, str]:
    params = {"dataset.name": dataset, "model.bits": bits, "model.depth": depth,
              "model.width": width, "model.label": f"wrn{depth}-{width}",
              "data.cutout": CUTOUT if cutout else 0, "trainer.max_epochs": epochs,
              **PAPER1_RECIPE, **DATASET_RECIPE[dataset], **more}
    return {k: str(v) for k, v in params.items()}


def _error_points(view: str, errors: dict[int, float], name: str = "acc") -> dict:
    """`<view>/<error name>` and `<view>/<name>` (a fraction) from errors in percent."""
    return {f"{view}/{ERROR_OF[name]}": dict(errors),
            f"{view}/{name}": {step: round(1 - error / 100, 6) for step, error in errors.items()}}


def _accuracy_points(view: str, accuracy: dict[int, float]) -> dict:
    return _error_points(view, {step: round(100 - acc, 2) for step, acc in accuracy.items()})


def _net(net: str) -> tuple[int, int | float]:
    depth, width = net.split("-")
    return int(depth), float(width) if "." in width else int(width)


def table1_references() -> list[Reference]:
    refs = []
    for cell in paper.TABLE1:
        plus = "++" if cell.cutout else "+"
        refs.append(Reference(
            key=f"p1/table1/{cell.bits}bit/{cell.depth}-{cell.width}/{cell.dataset}{plus}",
            name=f"paper 1 Table 1: {_bits(cell.bits)} {cell.depth}-{cell.width} "
                 f"{NAMES[cell.dataset]}{plus}",
            source="paper-spec 1.6, Table 1 ([P1])",
            params=_params(cell.bits, cell.depth, cell.width, cell.dataset, cell.cutout,
                           cell.epochs),
            history=_error_points(FINAL, {cell.epochs: cell.error}),
            tags={"binwrn.reference_paper": "1", "binwrn.reference_kind": "table1"}))
    return refs


def _table2_history(cell: paper.Table2Entry) -> dict:
    history = _error_points(FINAL, {cell.epochs: cell.error})
    if cell.top5 is not None:
        history |= _error_points(FINAL, {cell.epochs: cell.top5}, "top5_acc")
    if cell.multi_crop is not None:  # the keys binwrn/train/multi_crop.py logs
        top1, top5 = cell.multi_crop
        history |= {"test_25crop/top1_error_pct": {cell.epochs: top1},
                    "test_25crop/top5_error_pct": {cell.epochs: top5}}
    if cell.dataset == "mnist":
        history |= _error_points(RECOMPUTED, paper.MNIST_CURVES[cell.bits])
    return history


def table2_references() -> list[Reference]:
    refs = []
    for cell in paper.TABLE2:
        depth, width = _net(cell.net)
        net = cell.net if cell.dataset != "mnist" else f"{cell.net} (4x wide)"
        refs.append(Reference(
            key=f"p1/table2/{cell.bits}bit/{cell.net}/{cell.dataset}",
            name=f"paper 1 Table 2: {_bits(cell.bits)} {net} {NAMES[cell.dataset]}",
            source="paper-spec 1.6, Table 2 and the MNIST paragraph ([P1])",
            params=_params(cell.bits, depth, width, cell.dataset, False, cell.epochs),
            history=_table2_history(cell), note=cell.note,
            tags={"binwrn.reference_paper": "1", "binwrn.reference_kind": "table2"}))
    return refs


def curve_references() -> list[Reference]:
    """Keras under test/* (BN running averages), MATLAB under test_recomputed/*."""
    refs = []
    for origin, curves, view, source in (
            ("Keras", paper.KERAS_CURVES, TEST,
             "paper-spec 1.6, Keras learning curves ([K] notebooks)"),
            ("MATLAB", paper.MATLAB_CURVES, RECOMPUTED,
             "paper-spec 1.6, stored MATLAB models ([M] PercentCorrectTest)")):
        for (dataset, bits), accuracy in curves.items():
            points = dict(zip(paper.CYCLE_ENDS, accuracy, strict=True))
            last = paper.CYCLE_ENDS[-1]
            refs.append(Reference(
                key=f"p1/curve/{origin.lower()}/{bits}bit/20-10/{dataset}++",
                name=f"{origin} curve: {_bits(bits)} 20-10 {NAMES[dataset]}++",
                source=source,
                params=_params(bits, 20, 10, dataset, True, last),
                history=_accuracy_points(view, points)
                | _accuracy_points(FINAL, {last: points[last]}),
                tags={"binwrn.reference_paper": "1", "binwrn.reference_kind": "curve"}))
    return refs


def paper2_references() -> list[Reference]:
    refs = []
    for (dataset, bits, norm), accuracy in paper.PAPER2_ACCURACY.items():
        srelu = norm == "shifted_relu"
        epochs = 300 if srelu else 254
        more = ({"model.norm": norm, "schedule.name": "cosine",
                 "model.temperature": paper.PAPER2_TEMPERATURE[(dataset, bits)]}
                if srelu else {"model.norm": norm})
        history = _accuracy_points(FINAL, {epochs: accuracy})
        if srelu and (dataset, bits) == ("cifar100", 1):
            history |= _accuracy_points(TEST, paper.PAPER2_SRELU_CURVE_C100_1BIT)
        refs.append(Reference(
            key=f"p2/{bits}bit/20-10/{dataset}++/{norm}",
            name=f"paper 2: {_bits(bits)} 20-10 {NAMES[dataset]}++ "
                 f"{'shifted ReLU' if srelu else 'BN'}",
            source="paper-spec 2.4, the official Keras re-run ([R] README)",
            params=_params(bits, 20, 10, dataset, True, epochs, **more), history=history,
            tags={"binwrn.reference_paper": "2", "binwrn.reference_kind": "table"}))
    return refs


def paper_references() -> list[Reference]:
    """Every published number binwrn compares against, one run per table cell or curve."""
    return [*table1_references(), *table2_references(), *curve_references(),
            *paper2_references()]


def log_paper_references(client, uri: str, artifact_root: str | None = None) -> Logged:
    """Log the references into the store `client` is open on (idempotent). Their experiment
    holds no artifacts; a database store still names a folder for them: `artifact_root`, by
    default mlartifacts/ beside a SQLite file (where `make ui` serves artifacts from)."""
    if artifact_root is None:
        artifact_root = (str(Path(uri[len("sqlite:///"):]).parent / "mlartifacts")
                         if uri.startswith("sqlite:///") else "mlartifacts")
    return log_references(client, uri, artifact_root, paper_references())
