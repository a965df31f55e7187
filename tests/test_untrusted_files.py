"""Readers of untrusted files (issue 15, item 5): sizes are checked against the file's length
before anything is allocated, a `.bwn` header is checked against its layers, and each bad
file is one sentence naming it (docs/reliability.md, "Untrusted files").

The last tests run the real CLIs (binwrn-eval, binwrn-run) on the named cases: non-zero
exit, one error line, no traceback.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from e2e import binwrn_run
from helpers_data import write_imagenet32_batches
from helpers_untrusted import (
    BAD_BWN,
    TIB_PICKLE,
    batch_pickle,
    huge_dims_gz,
    lying_bytes_pickle,
    mnist_folder,
    negative_dims_idx,
    reconstruct_pickle,
    seal_bwn,
    split_bwn,
    valid_bwn,
)

from binwrn import cli
from binwrn.data.array_pickle import load_array_pickle, load_planar_batch
from binwrn.data.mnist import read_mnist
from binwrn.errors import ConfigError, DataError
from binwrn.export import format_checks, graph
from binwrn.export.format import decode
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.pack import pack_wrn, rebuild_wrn

BINWRN_EVAL = Path(sys.executable).with_name("binwrn-eval")


def _one_sentence(err: DataError, name: str, *words: str) -> str:
    message = str(err)
    assert "\n" not in message and message.startswith(name) and message.endswith("."), message
    for word in words:
        assert word in message, message
    return message


# ----------------------------------------------------------------------------- .bwn


@pytest.mark.parametrize("kind", ["wrn", "shifted", "wrn18"])
def test_valid_files_of_every_topology_pass_the_checks(kind):
    packed = decode(valid_bwn(kind), "m.bwn")
    rebuild_wrn(packed)
    logits = NumpyWRN(packed).logits(np.full((2, 3, 32, 32), 128, np.float32))
    assert logits.shape == (2, packed.header["model"]["num_classes"])


@pytest.mark.parametrize("case", list(BAD_BWN))
def test_bwn_with_a_valid_checksum_but_an_inconsistent_header_is_refused(case):
    make, words = BAD_BWN[case]
    with pytest.raises(DataError) as caught:
        decode(make(), "m.bwn")
    _one_sentence(caught.value, "m.bwn ", words)


def test_a_header_of_3_x_10_to_the_11_blocks_is_refused_without_building_anything():
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="residual blocks"):
            decode(BAD_BWN["model of 3 x 10**11 blocks"][0](), "m.bwn")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_nested_json_header_is_one_sentence():
    header, data = split_bwn(valid_bwn())
    with pytest.raises(DataError, match="m.bwn is corrupted"):
        decode(seal_bwn(b"[" * 100_000 + b"]" * 100_000, data), "m.bwn")


@pytest.mark.parametrize("kind", ["wrn", "shifted", "wrn18"])
def test_expected_layers_are_what_the_models_build(kind):
    """format_checks mirrors the constructors: its layer list equals the packer's."""
    from helpers_export import trained_looking_wrn, trained_looking_wrn18

    variants = {"wrn": [trained_looking_wrn(), trained_looking_wrn(depth=16, width=2,
                                                                    bn_affine=True)],
                "shifted": [trained_looking_wrn(norm="shifted_relu", temperature=8.0)],
                "wrn18": [trained_looking_wrn18(), trained_looking_wrn18(stem_stride=1)]}
    for model, kwargs in variants[kind]:
        header = pack_wrn(model, kwargs).header
        m = format_checks._model(header["topology"], header["model"])
        packed_layers = [
            {k: (v is not None if k == "affine" else v) for k, v in
             {**layer, "affine": layer.get("weight")}.items()
             if k in ("name", "type", "in_channels", "out_channels", "kernel_size", "stride",
                      "padding", "channels", "affine")
             and not (layer["type"] == "conv2d" and k == "affine")}
            for layer in header["layers"]]
        assert format_checks.expected_layers(header["topology"], m) == packed_layers


def test_the_checks_know_the_topologies_and_defaults_of_the_models():
    import inspect

    from binwrn.models import WideResNet, WideResNet18
    from binwrn.models.binary import he_scale

    assert format_checks.TOPOLOGIES == graph.TOPOLOGIES
    assert inspect.signature(he_scale).parameters["gain"].default == format_checks.GAIN
    assert torch.nn.BatchNorm2d(1).eps == format_checks.BN_EPS
    for net, defaults in ((WideResNet, format_checks.WRN_DEFAULTS),
                          (WideResNet18, format_checks.WRN18_DEFAULTS)):
        signature = inspect.signature(net).parameters
        assert {k: signature[k].default for k in defaults} == defaults


# ----------------------------------------------------------------------------- MNIST IDX


def test_idx_with_negative_dimensions_that_match_the_file_length(tmp_path):
    folder = mnist_folder(tmp_path)
    negative_dims_idx(folder)
    with pytest.raises(DataError) as caught:
        read_mnist(tmp_path, verify_checksums=False)
    _one_sentence(caught.value, str(folder / "train-images-idx3-ubyte"),
                  "negative size", "(-30, -28, 28)")


def test_gzip_idx_announcing_more_than_deflate_can_hold_is_refused_before_reading(tmp_path):
    folder = mnist_folder(tmp_path, gz=True)
    huge_dims_gz(folder)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            read_mnist(tmp_path, verify_checksums=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_sentence(caught.value, str(folder / "train-images-idx3-ubyte.gz"),
                  "more than a", "gzip archive can hold")
    assert peak < 4 << 20


def test_gzip_idx_shorter_than_its_header_says(tmp_path):
    import gzip

    from helpers_untrusted import idx_header

    folder = mnist_folder(tmp_path, gz=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx_header(0x803, 30, 28, 28) + bytes(1000)))
    with pytest.raises(DataError, match=r"holds 1000 bytes of data but its header announces "
                                        r"23520"):
        read_mnist(tmp_path, verify_checksums=False)


# ----------------------------------------------------------------------------- pickles


def test_a_pickle_asking_the_allowed_ndarray_for_1_tib_is_refused_before_allocating(tmp_path):
    path = tmp_path / "val_data"
    path.write_bytes(TIB_PICKLE)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            load_planar_batch(path, "labels", "ImageNet32")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_sentence(caught.value, str(path), "1,099,511,627,776 bytes, more than the file holds")
    assert peak < 1 << 20


def test_a_bytes_length_of_1_tib_is_never_allocated(tmp_path):
    path = tmp_path / "val_data"
    path.write_bytes(lying_bytes_pickle())
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="pickle data was truncated"):
            load_array_pickle(path, "ImageNet32")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("blob, words", [
    (reconstruct_pickle((10,), b"B"), "_reconstruct is called otherwise"),
    (b"\x80\x02cnumpy\nndarray\n\x8a\x05\x00\x00\x00\x00\x01\x85R.", "calls numpy.ndarray"),
    (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.", "not an array of plain"),
    (b"\x80\x02cnumpy\ndtype\nX\x05\x00\x00\x00V9999\x89\x88\x87R.", "not an array of plain"),
    (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNN"
     b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x19tb.", "not a plain number type's"),  # object flags
    (b"\x80\x02}X\x01\x00\x00\x00ab.", "sets the state of a dict"),
    (b"\x80\x02cnumpy\nndarray\n)\x81.", "builds objects"),
    (b"\x80\x02cos\nsystem\n.", "refusing to load os.system"),
])
def test_every_way_the_allowed_globals_can_be_misused_is_one_sentence(tmp_path, blob, words):
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with pytest.raises(DataError) as caught:
        load_array_pickle(path, "CIFAR")
    _one_sentence(caught.value, str(path), words)


@pytest.mark.parametrize("python2", [False, True])
def test_real_batches_still_load_and_use_about_their_own_size(tmp_path, python2):
    path = tmp_path / "batch"
    path.write_bytes(batch_pickle(n=200, python2=python2))
    tracemalloc.start()
    try:
        data, labels = load_planar_batch(path, "labels", "CIFAR")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.shape == (200, 3072) and data.dtype == np.uint8 and labels.shape == (200,)
    assert peak < 4 * path.stat().st_size


def test_labels_that_are_references_to_an_array_are_refused(tmp_path):
    """A list of 1,000 references to one array would be 1,000 copies in np.asarray."""
    import pickle

    rows = np.zeros((2, 3072), np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": rows, "labels": [rows] * 1000}, protocol=3)
                     .replace(b"numpy._core", b"numpy.core"))
    with pytest.raises(DataError, match="labels as a list of whole numbers"):
        load_planar_batch(path, "labels", "CIFAR")


# ----------------------------------------------------------------------------- the CLIs


def _error_line(done) -> str:
    text = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in text, text[-3000:]
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def _mnist_negative(tmp: Path) -> list[str]:
    negative_dims_idx(mnist_folder(tmp / "mnist"))
    return ["dataset=mnist", f"data.root={tmp / 'mnist'}", "data.verify_checksums=false"]


def _imagenet32_tib(tmp: Path) -> list[str]:
    write_imagenet32_batches(tmp / "i32", n_per_batch=2, n_val=4)
    (tmp / "i32" / "Imagenet32_val" / "val_data").write_bytes(TIB_PICKLE)
    return ["dataset=imagenet32", f"data.root={tmp / 'i32'}"]


RUN_CASES = {"MNIST IDX with negative dimensions": (_mnist_negative, "negative size"),
             "ImageNet32 pickle asking for 1 TiB": (_imagenet32_tib,
                                                    "more than the file holds")}


@pytest.mark.parametrize("case", list(BAD_BWN))
def test_binwrn_eval_refuses_each_bad_bwn_in_one_sentence(case, tmp_path, monkeypatch, capsys):
    """The entry function in-process (the subprocess test below runs one case for real)."""
    path = tmp_path / "m.bwn"
    path.write_bytes(BAD_BWN[case][0]())
    monkeypatch.setattr(sys, "argv", ["binwrn-eval", str(path), "--runtime", "numpy"])
    with pytest.raises(SystemExit) as stop:
        cli.evaluate()
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and "Traceback" not in out + err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith(f"binwrn-eval: error: {path} ") and BAD_BWN[case][1] in line, line


@pytest.mark.slow
def test_the_clis_refuse_bad_files_in_one_sentence(tmp_path_factory):
    """binwrn-eval and binwrn-run as a user runs them: exit 2, one line, nothing stored."""
    folders = {name: tmp_path_factory.mktemp("case") for name in ["bwn", *RUN_CASES]}

    def eval_bwn():
        path = folders["bwn"] / "m.bwn"
        path.write_bytes(BAD_BWN["stride 0"][0]())
        return subprocess.run([str(BINWRN_EVAL), str(path)], capture_output=True, text=True,
                              timeout=300, cwd=folders["bwn"])

    def run(name: str):
        tmp = folders[name]
        return binwrn_run(tmp, "experiment=smoke", *RUN_CASES[name][0](tmp), timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        evaluated = pool.submit(eval_bwn)
        runs = dict(zip(RUN_CASES, pool.map(run, RUN_CASES), strict=True))
        done = evaluated.result()
    assert done.returncode == 2
    assert _error_line(done).startswith("binwrn-eval: error: ")
    assert BAD_BWN["stride 0"][1] in _error_line(done)
    for name, done in runs.items():
        assert done.returncode == 2
        line = _error_line(done)
        assert line.startswith("binwrn-run: error: ") and RUN_CASES[name][1] in line, line
        assert done.runs() == []


def test_eval_refuses_a_data_set_whose_images_have_other_channels(tmp_path):
    """A 3-channel model and MNIST's 1-channel images: one sentence, not a broadcast error."""
    path = tmp_path / "m.bwn"
    path.write_bytes(valid_bwn())
    from binwrn.configuration.compose import compose
    from binwrn.configuration.stored import run_config
    from binwrn.export.evaluate import evaluate_packed

    packed = decode(path.read_bytes(), str(path))
    with pytest.raises(ConfigError, match="takes 3-channel images but dataset=mnist has 1"):
        evaluate_packed(packed, run_config(compose(["dataset=mnist"])), "numpy", str(path))
