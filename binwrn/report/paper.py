"""The papers' numbers, as data (paper-spec sections 1.6, 2.4): one home for those a report
compares against and for those experiment headers, sweep headers and the docs quote, which
tests/test_paper_numbers.py checks against this module.

Everything here is copied from ../shared/docs/paper-spec.md section 1.6 ("Results"), which
quotes McDonnell, ICLR 2018 ([P1]), the official Keras notebooks ([K]) and the stored
MATLAB models ([M]), and section 2.4 for paper 2 (McDonnell et al. 2019, the Keras re-run in
the official README [R]). Errors are test error in percent, the paper's unit; where a source
gives accuracy it is kept as published and converted on lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

# Ends of the SGDR cycles 2, 4, 8, ... (spec 1.5.2); the learning curves are sampled here.
CYCLE_ENDS = (2, 6, 14, 30, 62, 126, 254)


@dataclass(frozen=True)
class Table1Entry:
    bits: int
    depth: int
    width: int
    dataset: str  # cifar10 | cifar100 (dataset.name)
    cutout: bool  # "++" column when True, "+" when False
    epochs: int
    error: float


# Paper 1 Table 1, CIFAR test error (%), spec 1.6: bits, depth, width, epochs,
# then the columns C10+, C100+, C10++, C100++ ("++" = with 18x18 cutout; None = "-").
_TABLE1 = (
    (32, 20, 4, 126, 5.02, 21.53, 4.39, 20.48),
    (32, 20, 10, 254, 4.22, 18.76, 3.46, 17.19),
    (32, 26, 10, 254, 4.23, 18.63, 3.54, 17.22),
    (32, 20, 20, 126, None, 18.14, None, None),
    (1, 20, 4, 126, 6.13, 23.87, 5.34, 23.74),
    (1, 20, 10, 254, 4.72, 19.35, 3.92, 18.51),
    (1, 26, 10, 254, 4.46, 18.94, 3.41, 18.50),
    (1, 20, 20, 126, None, 18.81, None, None),
)
_COLUMNS = (("cifar10", False), ("cifar100", False), ("cifar10", True), ("cifar100", True))

TABLE1 = tuple(
    Table1Entry(bits, depth, width, dataset, cutout, epochs, error)
    for bits, depth, width, epochs, *errors in _TABLE1
    for (dataset, cutout), error in zip(_COLUMNS, errors, strict=True)
    if error is not None
)


def table1_entry(bits: int, depth: int, width: int, dataset: str,
                 cutout: bool) -> Table1Entry | None:
    """The Table 1 cell for these settings. Depths are matched in the paper's 6n+2 naming
    (binwrn also accepts Zagoruyko's 6n+4 names, e.g. 22 for 20, which do not match here)."""
    for entry in TABLE1:
        if (entry.bits, entry.depth, entry.width, entry.dataset, entry.cutout) == (
                bits, depth, width, dataset, cutout):
            return entry
    return None


@dataclass(frozen=True)
class Table2Entry:
    bits: int
    net: str  # "<depth>-<width>" as the run's params give them, e.g. "20-4", "18-2.5"
    dataset: str  # dataset.name
    epochs: int
    error: float  # top-1 test error (%)
    top5: float | None = None  # top-5 test error (%), where the paper gives one
    note: str = ""
    multi_crop: tuple[float, float] | None = None  # 25-crop (top-1, top-5) error (%), ImageNet


# Paper 1 Table 2 (spec 1.6): SVHN top-1, ImageNet32 top-1 / top-5 on the validation set,
# ImageNet top-1 / top-5 with a single centre crop, and with the 25-crop test apart.
# Then the MNIST paragraph of section 4 (not a table): a "4x wide ResNet" of unstated depth,
# no augmentation, test error after the epochs given; binwrn's preset net is 20-4.
TABLE2 = (  # in the paper's row order: weights, then net; its columns are the data sets
    Table2Entry(32, "20-4", "svhn", 30, 1.75),
    Table2Entry(32, "20-4", "imagenet32", 30, 46.61, 22.91),
    Table2Entry(32, "20-10", "imagenet32", 30, 39.96, 17.89),
    Table2Entry(32, "20-15", "imagenet32", 30, 38.90, 17.03),
    Table2Entry(32, "18-2.5", "imagenet", 62, 26.92, 9.20, "single crop", (22.99, 6.91)),
    Table2Entry(1, "20-4", "svhn", 30, 1.93),
    Table2Entry(1, "20-4", "imagenet32", 30, 56.08, 30.88),
    Table2Entry(1, "20-10", "imagenet32", 30, 44.27, 21.09),
    Table2Entry(1, "26-10", "imagenet32", 62, 41.36, 18.93),
    Table2Entry(1, "20-15", "imagenet32", 30, 41.26, 19.08),
    Table2Entry(1, "18-2.5", "imagenet", 62, 31.03, 11.51, "single crop", (26.04, 8.48)),
    Table2Entry(32, "20-4", "mnist", 6, 0.28, note="4x wide, depth not stated; 0.71 after 1 "
                "epoch"),
    Table2Entry(1, "20-4", "mnist", 14, 0.27, note="4x wide, depth not stated; 0.81 / 0.36 "
                "after 1 / 6 epochs"),
)


# The MNIST paragraph of paper 1 section 4 (spec 1.6) as points: test error (%) by epochs
# trained, by bits; the last point of each is its TABLE2 entry.
MNIST_CURVES = {32: {1: 0.71, 6: 0.28}, 1: {1: 0.81, 6: 0.36, 14: 0.27}}


def table2_entry(bits: int | None, net: str, dataset: str | None) -> Table2Entry | None:
    """The Table 2 (or MNIST) result for these settings, whatever the run's epoch budget."""
    for entry in TABLE2:
        if (entry.bits, entry.net, entry.dataset) == (bits, net, dataset):
            return entry
    return None


@dataclass(frozen=True)
class GapPoint:
    dataset: str
    width: float
    gap: float  # 1-bit minus full-precision top-1 error, percentage points
    note: str = ""


# Fig. 1 gap points, spec 1.6 (derived there from Tables 1 and 2; they match the repo's
# Figures/Gap.png). The widths are those of the table rows each gap is the difference of:
# 20-4 / 20-10 / 20-15 on ImageNet32, 20-4 (no cutout) and 20-10 (cutout) on CIFAR-100,
# 20-10 with cutout on CIFAR-10, 20-4 on SVHN and 18-2.5 on ImageNet.
FIG1_GAPS = (
    GapPoint("ImageNet32", 4, 9.47),
    GapPoint("ImageNet32", 10, 4.31),
    GapPoint("ImageNet32", 15, 2.36),
    GapPoint("CIFAR-100", 4, 2.34, "no cutout"),
    GapPoint("CIFAR-100", 10, 1.32, "cutout"),
    GapPoint("CIFAR-10", 10, 0.46, "cutout"),
    GapPoint("SVHN", 4, 0.18),
    GapPoint("ImageNet", 2.5, 4.11, "single crop"),
    GapPoint("ImageNet", 2.5, 3.05, "multi-crop"),
)

# Test ACCURACY (%) at the cycle ends 2, 6, 14, 30, 62, 126, 254 of WRN-20-10 with cutout,
# 254 epochs of SGDR. Keras: the official notebooks' saved outputs ([K], spec 1.6 "Keras
# learning curves"). MATLAB: the stored 1-bit models' PercentCorrectTest ([M], spec 1.6).
KERAS_CURVES = {
    ("cifar10", 32): (76.61, 88.00, 92.62, 94.59, 95.79, 96.35, 96.65),
    ("cifar10", 1): (73.62, 86.27, 91.46, 94.22, 95.43, 96.06, 96.25),
    ("cifar100", 32): (35.95, 59.71, 72.43, 78.55, 81.01, 82.58, 83.02),
    ("cifar100", 1): (31.94, 54.77, 69.71, 76.58, 80.12, 81.17, 81.83),
}
MATLAB_CURVES = {
    ("cifar10", 1): (73.40, 86.45, 91.54, 94.44, 95.36, 95.68, 96.18),
    ("cifar100", 1): (31.65, 53.68, 69.32, 76.65, 79.82, 81.12, 82.09),
}


def reference_curve(curves: dict, bits: int, depth: int, width: int, dataset: str,
                    cutout: bool) -> dict[int, float] | None:
    """Test error (%) by cycle-end epoch of the matching curve, or None: the curves exist
    only for 20-10 with cutout on CIFAR-10/100."""
    accuracy = curves.get((dataset, bits)) if (depth, width, cutout) == (20, 10, True) else None
    if accuracy is None:
        return None
    return {epoch: round(100.0 - acc, 2) for epoch, acc in zip(CYCLE_ENDS, accuracy, strict=True)}


# Fig. 6 ablation (CIFAR-100, 20-4, no cutout, ~254 epochs; spec 1.6): the paper gives no
# numbers, only these claims, which the report sets beside the effects it measures, as
# (what the claim leads one to expect of the measured difference, the claim).
CLAIM_BN = ("about -3", "Not learning BN scale and offset lowers the final error by "
            "\"around 3% absolute\".")
CLAIM_SGDR_FP = ("about 0 final, < 0 early", "Warm restarts speed up full-precision "
                 "convergence but do not significantly lower its final error.")
CLAIM_SGDR_1BIT = ("< 0", "For 1-bit weights, warm restarts are needed for the best result.")
CLAIM_BEST_1BIT = ("sgdr, BN fixed", "For 1-bit weights, both warm restarts and BN not "
                   "learned are needed for the best result.")
CLAIMS = (CLAIM_BN, CLAIM_SGDR_FP, CLAIM_SGDR_1BIT, CLAIM_BEST_1BIT)


# [SZ]'s PyTorch re-implementation (spec 1.6): the standard deviation over 5 seeds of its
# CIFAR-100 test accuracy (%), WRN-20-10 without cutout, first and last layers fp32, by bits.
# The sweeps that repeat seeds quote it as the spread to expect (sweeps/p1_seeds.yaml).
SZ_SEED_STD = {32: 0.24, 1: 0.26}


# Paper 2 (McDonnell et al. 2019), spec 2.4: the official Keras re-run ([R] README), test
# ACCURACY (%) of WRN-20-10 with 18x18 cutout, batch 125. BN rows: paper 1's net and 254
# epochs of SGDR; shifted-ReLU rows: no BN but the input's, one 300-epoch cosine, logits / T.
# The paper's full text is not public, so these are the only paper-2 numbers (no ImageNet,
# no other widths or bit depths).
PAPER2_ACCURACY = {
    ("cifar10", 32, "batchnorm"): 96.62,
    ("cifar10", 1, "batchnorm"): 96.25,
    ("cifar10", 32, "shifted_relu"): 95.66,
    ("cifar10", 1, "shifted_relu"): 96.52,
    ("cifar100", 32, "batchnorm"): 83.02,
    ("cifar100", 1, "batchnorm"): 81.83,
    ("cifar100", 32, "shifted_relu"): 79.37,
    ("cifar100", 1, "shifted_relu"): 78.41,
}
# The 1-bit shifted-ReLU CIFAR-100 learning curve ([R], spec 2.4): test accuracy (%) by epoch
# of its one 300-epoch cosine (it gains late: a short budget says little).
PAPER2_SRELU_CURVE_C100_1BIT = {30: 62.39, 62: 65.53, 126: 66.16, 254: 75.98, 300: 78.41}
# The temperature each shifted-ReLU number was trained with ([K] notebooks, spec 2.2).
PAPER2_TEMPERATURE = {("cifar10", 32): 80.0, ("cifar10", 1): 40.0, ("cifar100", 32): 25.0,
                      ("cifar100", 1): 25.0}


def paper2_error(bits: int, depth: int, width: int, dataset: str, cutout: bool, norm: str,
                 temperature: float | None = None) -> float | None:
    """Test error (%) of the paper-2 setting, or None: the numbers exist for 20-10 with
    cutout only, and a shifted-ReLU one only at the notebooks' temperature."""
    accuracy = PAPER2_ACCURACY.get((dataset, bits, norm))
    if accuracy is None or (depth, width, cutout) != (20, 10, True):
        return None
    if norm == "shifted_relu" and temperature != PAPER2_TEMPERATURE[(dataset, bits)]:
        return None
    return round(100.0 - accuracy, 2)


# Paper 3's guided "ascend" orders as its official code ships them (spec 3.6) live with
# the layer orders that train them; the reports compare against them from here.
from binwrn.models.official_orders import PAPER3_ASCEND  # noqa: E402,F401
