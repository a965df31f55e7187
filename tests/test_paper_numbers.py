"""One home for the papers' numbers: `binwrn/report/paper.py`.

Experiment headers, sweep headers and the preset tables of docs/sweeps.md and docs/imagenet.md
quote the papers' numbers for the reader; this test reads the numbers they quote and checks
them against the module the reports compare with, so a typo in a header (or in the module)
fails here instead of misleading a user. Every experiment header either quotes a paper
number or says it is not a paper setting; a 32-bit twin (a 1-bit experiment with
model.bits=32 and nothing else) quotes nothing itself, its 1-bit file quotes both precisions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from binwrn.report.paper import (
    KERAS_CURVES,
    MATLAB_CURVES,
    PAPER2_ACCURACY,
    PAPER2_SRELU_CURVE_C100_1BIT,
    SZ_SEED_STD,
    TABLE1,
    TABLE2,
    table1_entry,
    table2_entry,
)

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "conf" / "experiment").glob("*.yaml"))
NUMBER = r"(\d+\.\d+|-)"
# The 32-bit twins: the fp32 file of a pair whose files differ only in model.bits. MNIST's
# pair also differs in its epochs, so each of its files is a recipe of its own.
TWINS = [p for p in EXPERIMENTS if "_fp32_" in p.stem and not p.stem.startswith("p1_mnist_")]
ONE_BIT = [p for p in EXPERIMENTS if "_1bit_" in p.stem]


def _twin(path: Path) -> Path | None:
    """The 32-bit twin of a 1-bit experiment, if it has one."""
    twin = path.with_name(path.name.replace("_1bit_", "_fp32_"))
    return twin if twin in TWINS else None


def _header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def _value(text: str) -> float | None:
    return None if text == "-" else float(text)


def _bits_and_net(stem: str) -> tuple[int, str]:
    match = re.search(r"_(1bit|fp32)_(?:[a-z0-9]+_)?(\d+-[\d.]+)$", stem)
    assert match, f"{stem}: name does not say bits and net"
    return (1 if match[1] == "1bit" else 32), match[2]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_header_quotes_a_paper_number_or_says_it_is_none(path):
    header = _header(path).lower()
    says_none = "not a paper setting" in header or "paper's numbers: none" in header
    names_its_1bit_file = path in TWINS and "numbers for both precisions are in" in header
    quoted = {float(x) for x in re.findall(r"(?<![\d.])\d+\.\d\d(?!\d)", header)}
    assert says_none or names_its_1bit_file or quoted & _every_paper_number(), (
        f"{path.name}: header quotes no paper number and does not say 'not a paper setting'")


@pytest.mark.parametrize("path", TWINS, ids=lambda p: p.stem)
def test_a_32bit_twin_is_its_1bit_file_with_32_bit_weights_and_nothing_else(path):
    one_bit = path.stem.replace("_fp32_", "_1bit_")
    assert yaml.safe_load(path.read_text()) == {"defaults": [one_bit, "_self_"],
                                                "model": {"bits": 32}}
    assert f"{one_bit}.yaml's header" in _header(path)


@pytest.mark.parametrize("path", [p for p in ONE_BIT if p.stem.startswith("p1_t1_")],
                         ids=lambda p: p.stem)
def test_table1_experiment_headers_match_the_paper_module(path):
    _, net = _bits_and_net(path.stem)
    depth, width = (int(x) for x in net.split("-"))
    columns = (rf"C10\+ {NUMBER} \| C100\+ {NUMBER} \| C10\+\+ {NUMBER} \| "
               rf"C100\+\+ {NUMBER}")
    lines = {1: rf"Paper test error \(%\): {columns}",
             32: rf"With 32-bit weights \(model.bits=32\): {columns}"}
    for bits in (1, 32) if _twin(path) else (1,):
        match = re.search(lines[bits], _header(path))
        assert match, f"{path.name}: no Table 1 line for {bits}-bit weights"
        cells = (("cifar10", False), ("cifar100", False), ("cifar10", True), ("cifar100", True))
        for (dataset, cutout), quoted in zip(cells, match.groups(), strict=True):
            entry = table1_entry(bits, depth, width, dataset, cutout)
            assert (entry.error if entry else None) == _value(quoted), (path.name, bits,
                                                                        dataset, cutout)


@pytest.mark.parametrize("path", [p for p in ONE_BIT if p.stem.startswith("p1_t2_")],
                         ids=lambda p: p.stem)
def test_table2_experiment_headers_match_the_paper_module(path):
    bits, net = _bits_and_net(path.stem)
    dataset = path.stem.split("_")[3]
    header = _header(path)
    entry = table2_entry(bits, net, dataset)
    assert entry is not None, path.name
    if dataset == "imagenet":
        match = re.search(rf"single centre crop {NUMBER} / {NUMBER} \| multi-crop \(25 crops,"
                          rf" softmax averaged\) {NUMBER} / {NUMBER}", header)
        assert match, path.name
        assert tuple(map(_value, match.groups())) == (entry.error, entry.top5,
                                                      *entry.multi_crop)
    elif dataset == "imagenet32":
        match = re.search(rf"top-1 {NUMBER}, top-5 {NUMBER}", header)
        assert match, path.name
        assert tuple(map(_value, match.groups())) == (entry.error, entry.top5)
    else:
        match = re.search(rf"Paper test error \(%\): {NUMBER}", header)
        assert match, path.name
        assert _value(match[1]) == entry.error
    if _twin(path) is None:
        return
    # the 32-bit twin's numbers, quoted beside the 1-bit ones
    other = table2_entry(32, net, dataset)
    assert other is not None, path.name
    if dataset == "imagenet":
        twin = re.search(rf"\(32-bit: single centre crop {NUMBER} / {NUMBER} \| multi-crop "
                         rf"{NUMBER} / {NUMBER}\)", header)
        assert twin, path.name
        assert tuple(map(_value, twin.groups())) == (other.error, other.top5, *other.multi_crop)
    else:
        twin = re.search(rf"\(32-bit: {NUMBER}(?: / {NUMBER})?\)", header)
        assert twin, path.name
        assert _value(twin[1]) == other.error
        assert twin[2] is None or _value(twin[2]) == other.top5


@pytest.mark.parametrize("bits", [1, 32])
def test_mnist_headers_match_the_paper_module(bits):
    name = "1bit" if bits == 1 else "fp32"
    header = _header(ROOT / "conf" / "experiment" / f"p1_mnist_{name}_20-4.yaml")
    final = table2_entry(bits, "20-4", "mnist")
    last = re.search(r"Paper test error \(%\): ([\d. a-z,]+?)(?: \(|$)", header)
    assert last, header
    quoted = dict((int(e), float(v)) for v, e in re.findall(r"(\d\.\d+) after (\d+)", last[1]))
    assert quoted[final.epochs] == final.error


@pytest.mark.parametrize("path", [p for p in ONE_BIT if p.stem.startswith("p2_")],
                         ids=lambda p: p.stem)
def test_paper2_experiment_headers_match_the_paper_module(path):
    norm = "batchnorm" if path.stem.endswith("_bn") else "shifted_relu"
    assert _twin(path), path.name
    lines = {1: rf"test accuracy %: C10 {NUMBER} \| C100 {NUMBER}",
             32: rf"With 32-bit weights \(model.bits=32\): C10 {NUMBER} \| C100 {NUMBER}"}
    for bits, line in lines.items():
        match = re.search(line, _header(path))
        assert match, (path.name, bits)
        assert _value(match[1]) == PAPER2_ACCURACY[("cifar10", bits, norm)]
        assert _value(match[2]) == PAPER2_ACCURACY[("cifar100", bits, norm)]


def test_table1_sweep_header_matches_the_paper_module():
    header = (ROOT / "sweeps" / "p1_table1.yaml").read_text()
    rows = re.findall(rf"#\s+(fp32|1-bit)\s+(\d+)-(\d+)\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+"
                      rf"{NUMBER}\s+{NUMBER}", header)
    assert len(rows) == 8
    quoted = {}
    for weights, depth, width, epochs, *errors in rows:
        for column, error in zip(("c10", "c100", "c10cut", "c100cut"), errors, strict=True):
            if error != "-":
                dataset = "cifar100" if column.startswith("c100") else "cifar10"
                quoted[(1 if weights == "1-bit" else 32, int(depth), int(width), dataset,
                        column.endswith("cut"), int(epochs))] = float(error)
    assert quoted == {(e.bits, e.depth, e.width, e.dataset, e.cutout, e.epochs): e.error
                      for e in TABLE1}


def test_convergence_sweep_header_matches_the_paper_curves():
    header = (ROOT / "sweeps" / "p1_convergence.yaml").read_text()
    rows = re.findall(r"#\s+(Keras|MATLAB)\s+(C10|C100)\s+(fp32|1-bit)((?:\s+\d+\.\d+){7})",
                      header)
    assert len(rows) == len(KERAS_CURVES) + len(MATLAB_CURVES)
    for source, dataset, weights, numbers in rows:
        curves = KERAS_CURVES if source == "Keras" else MATLAB_CURVES
        key = ("cifar10" if dataset == "C10" else "cifar100", 1 if weights == "1-bit" else 32)
        assert tuple(float(x) for x in numbers.split()) == curves[key], (source, key)


def _rows(pattern: str, text: str) -> list[tuple[str, ...]]:
    return re.findall(pattern, text, flags=re.MULTILINE)


def test_table2_sweep_header_matches_the_paper_module():
    header = (ROOT / "sweeps" / "p1_table2.yaml").read_text()
    pair = rf"{NUMBER} / {NUMBER}"
    rows = _rows(rf"^#\s+(fp32|1-bit)\s+(\S+)\s+(\d+)\s+{NUMBER}\s+(?:{pair}|-)\s+"
                 rf"(?:single {pair}, 25-crop {pair}|-)$", header)
    quoted = {}
    for weights, net, epochs, svhn, *cells in rows:
        bits = 1 if weights == "1-bit" else 32
        i32, single, multi = cells[0:2], cells[2:4], cells[4:6]
        for dataset, numbers in (("svhn", (svhn,)), ("imagenet32", i32),
                                 ("imagenet", (*single, *multi))):
            if numbers[0] not in ("", "-"):  # "-": the paper has no such cell
                quoted[(bits, net, dataset, int(epochs))] = tuple(map(_value, numbers))
    assert quoted == {(e.bits, e.net, e.dataset, e.epochs):
                      tuple(x for x in (e.error, e.top5, *(e.multi_crop or ())) if x is not None)
                      for e in TABLE2 if e.dataset != "mnist"}
    mnist = re.search(r"fp32 [\d.]+ after 1 epoch, ([\d.]+) after (\d+); 1-bit [\d.]+ / "
                      r"[\d.]+ / ([\d.]+)\s+after 1 / 6 / (\d+)", _header_of(header))
    assert mnist, "no MNIST line"
    for bits, error, epochs in ((32, mnist[1], mnist[2]), (1, mnist[3], mnist[4])):
        entry = table2_entry(bits, "20-4", "mnist")
        assert (float(error), int(epochs)) == (entry.error, entry.epochs)


def _header_of(text: str) -> str:
    return " ".join(line.lstrip("# ").rstrip() for line in text.splitlines()
                    if line.startswith("#"))


def test_paper2_sweep_header_matches_the_paper_module():
    header = (ROOT / "sweeps" / "p2_grid.yaml").read_text()
    rows = _rows(rf"^#\s+(fp32|1-bit), (BN|sReLU)\s+{NUMBER} \({NUMBER}\)\s+{NUMBER} "
                 rf"\({NUMBER}\)$", header)
    quoted = {}
    for weights, norm, *numbers in rows:
        key = (1 if weights == "1-bit" else 32, "batchnorm" if norm == "BN" else "shifted_relu")
        for dataset, (accuracy, error) in zip(("cifar10", "cifar100"),
                                              (numbers[0:2], numbers[2:4]), strict=True):
            assert round(100.0 - float(accuracy), 2) == float(error), (key, dataset)
            quoted[(dataset, *key)] = float(accuracy)
    assert quoted == PAPER2_ACCURACY
    curve = re.search(r"1-bit sReLU C100 at epochs ([\d /]+): ([\d. /]+)", _header_of(header))
    assert curve, "no learning-curve line"
    epochs = [int(e) for e in curve[1].split(" / ")]
    accuracies = [float(a) for a in curve[2].strip(" .").split(" / ")]
    assert dict(zip(epochs, accuracies, strict=True)) == PAPER2_SRELU_CURVE_C100_1BIT


@pytest.mark.parametrize("name", ["p1_fig6_ablation", "p1_implementation", "p1_precision",
                                  "p1_seeds"])
def test_sweep_prose_quotes_only_the_modules_numbers(name):
    """These headers quote Table 1 cells, the Keras and MATLAB re-runs' final errors and
    [SZ]'s seed spread in prose: each percentage must be one of those."""
    finals = [curve[-1] for curve in (*KERAS_CURVES.values(), *MATLAB_CURVES.values())]
    finals += list(PAPER2_ACCURACY.values())  # the Keras re-run of paper 2's README [R]
    known = ({e.error for e in TABLE1} | {round(100.0 - a, 2) for a in finals}
             | set(SZ_SEED_STD.values()))
    header = _header_of((ROOT / "sweeps" / f"{name}.yaml").read_text())
    quoted = [float(x) for x in re.findall(r"(\d+\.\d+) %", header)]
    assert quoted, name
    assert set(quoted) <= known, sorted(set(quoted) - known)


@pytest.mark.parametrize("doc", ["docs/sweeps.md", "docs/imagenet.md"])
def test_preset_tables_in_the_docs_match_the_paper_module(doc):
    rows = _rows(r"^\| `(p1_(?:t2|mnist)_\w+?_([\d.]+-[\d.]+))` \|(.*)$", (ROOT / doc).read_text())
    assert rows, doc
    for name, net, cells in rows:
        bits = 1 if "_1bit_" in name else 32
        dataset = "mnist" if name.startswith("p1_mnist_") else name.split("_")[3]
        entry = table2_entry(bits, net, dataset)
        quoted = [float(x) for x in re.findall(r"(?<![\d.])\d+\.\d\d(?!\d)", cells)]
        if dataset == "mnist":  # the final error, then the earlier epochs' the note gives
            assert quoted[0] == entry.error and all(f"{x:.2f}" in entry.note
                                                     for x in quoted[1:]), name
        else:
            assert quoted == [x for x in (entry.error, entry.top5, *(entry.multi_crop or ()))
                              if x is not None], name


def _every_paper_number() -> set[float]:
    """Each number the module holds, accuracies also as errors (100 - accuracy)."""
    accuracies = [*PAPER2_ACCURACY.values(), *PAPER2_SRELU_CURVE_C100_1BIT.values(),
                  *(a for curve in (*KERAS_CURVES.values(), *MATLAB_CURVES.values())
                    for a in curve)]
    errors = [*(e.error for e in TABLE1), *SZ_SEED_STD.values(),
              *(x for e in TABLE2 for x in (e.error, e.top5, *(e.multi_crop or ()))
                if x is not None)]
    return {*accuracies, *(round(100.0 - a, 2) for a in accuracies), *errors}


def test_the_sweep_table_and_the_default_config_quote_only_paper_numbers():
    page = (ROOT / "docs" / "sweeps.md").read_text()
    sweeps = page[page.index("# Reproducing the paper: sweeps"):page.index("## Table 2 presets")]
    rows = [line.split("|")[-2] for line in sweeps.splitlines() if line.startswith("| `p")]
    assert len(rows) == len(list((ROOT / "sweeps").glob("*.yaml")))
    config = _header_of((ROOT / "conf" / "config.yaml").read_text())
    for text in (*rows, config):
        quoted = {float(x) for x in re.findall(r"(?<![\d.])\d+\.\d\d(?!\d)", text)}
        assert quoted <= _every_paper_number(), (text, sorted(quoted - _every_paper_number()))
