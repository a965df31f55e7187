"""MNIST in its official IDX files (binwrn/data/mnist.py), from tiny files the tests write."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from helpers_data import write_mnist_idx

import binwrn.data.mnist as mnist
from binwrn.configuration.compose import compose
from binwrn.data import load_splits
from binwrn.data.mnist import read_mnist
from binwrn.errors import DataError


def _official_md5_of_written(folder, monkeypatch) -> None:
    """Pretend the generated archives are the official ones, so only a damage differs."""
    table = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.glob("*.gz")}
    monkeypatch.setattr(mnist, "OFFICIAL_MD5", table)


@pytest.mark.parametrize("layout, compressed", [("torchvision", (True, False)),
                                                ("flat", (False,)), ("flat", (True,))])
def test_round_trip_in_every_layout(tmp_path, monkeypatch, layout, compressed) -> None:
    written = write_mnist_idx(tmp_path, n_train=30, n_test=20, seed=4, layout=layout,
                              compressed=compressed)
    _official_md5_of_written(written["folder"], monkeypatch)
    train, test = read_mnist(tmp_path)
    for split, name in ((train, "train"), (test, "test")):
        assert split.images.shape == (len(written[f"{name}_labels"]), 28, 28, 1)
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
        assert split.images.flags.writeable  # torch.from_numpy warns on read-only arrays
        assert np.array_equal(split.images[..., 0], written[f"{name}_images"])
        assert np.array_equal(split.labels, written[f"{name}_labels"])


def test_reads_what_torchvisions_own_reader_reads(tmp_path) -> None:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    folder = write_mnist_idx(tmp_path, seed=2, compressed=(False,))["folder"]
    train, _ = read_mnist(tmp_path)
    assert np.array_equal(train.images[..., 0],
                          read_image_file(str(folder / "train-images-idx3-ubyte")).numpy())
    assert np.array_equal(train.labels,
                          read_label_file(str(folder / "train-labels-idx1-ubyte")).numpy())


def test_official_md5_table_is_torchvisions() -> None:
    from torchvision.datasets import MNIST

    assert mnist.OFFICIAL_MD5 == dict(MNIST.resources)


def test_an_archive_that_is_not_the_official_one_is_refused_unless_told(tmp_path) -> None:
    write_mnist_idx(tmp_path)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz has MD5 .* not the "
                       "official f68b3c2d.*data.verify_checksums=false"):
        read_mnist(tmp_path)
    train, _ = read_mnist(tmp_path, verify_checksums=False)
    assert len(train) == 30


def test_the_archive_is_what_is_read_when_both_forms_are_there(tmp_path, monkeypatch) -> None:
    folder = write_mnist_idx(tmp_path, seed=1)["folder"]
    _official_md5_of_written(folder, monkeypatch)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")  # never opened
    _, test = read_mnist(tmp_path)
    assert len(test) == 20


@pytest.mark.parametrize("damage, words", [
    ("magic", "magic number 0x00000801, not 0x00000803"),
    ("truncated", "holds 2000 bytes but its header announces"),
    ("short", "too short"),
    ("counts", "holds 30 images but .* 29 labels"),
    ("size", "not MNIST's 28x28"),
    ("label", "label 12; MNIST's are 0-9"),
    ("gzip", "cannot be read"),
])
def test_damaged_files_get_one_sentence(tmp_path, damage, words) -> None:
    folder = write_mnist_idx(tmp_path, compressed=(False,), seed=3)["folder"]
    images, labels = folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte"
    header = lambda *ints: np.array(ints, dtype=">i4").tobytes()  # noqa: E731
    if damage == "magic":
        images.write_bytes(labels.read_bytes())
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:2000])
    elif damage == "short":
        images.write_bytes(b"\0\0\x08")
    elif damage == "counts":
        labels.write_bytes(header(0x801, 29) + bytes(29))
    elif damage == "size":
        images.write_bytes(header(0x803, 30, 32, 32) + bytes(30 * 32 * 32))
    elif damage == "label":
        labels.write_bytes(header(0x801, 30) + bytes([12] * 30))
    else:
        images.unlink()
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=words):
        read_mnist(tmp_path, verify_checksums=False)


def test_missing_files_are_named_with_where_they_go(tmp_path) -> None:
    folder = write_mnist_idx(tmp_path)["folder"]
    for path in folder.glob("t10k-labels*"):
        path.unlink()
    with pytest.raises(DataError, match=r"missing: t10k-labels-idx1-ubyte\).*MNIST/raw"):
        read_mnist(tmp_path)
    with pytest.raises(DataError, match="missing: train-images-idx3-ubyte, .*data.download"):
        read_mnist(tmp_path / "elsewhere")


def test_load_splits_and_the_dataset_config(tmp_path) -> None:
    write_mnist_idx(tmp_path, n_train=40, n_test=20)
    train, test = load_splits("mnist", tmp_path, 10, train_limit=20, verify_checksums=False)
    assert len(train) == 20 and len(test) == 20
    assert np.bincount(train.labels, minlength=10).tolist() == [2] * 10
    cfg = compose(["dataset=mnist"])
    assert (cfg.dataset.name, cfg.dataset.image_size, cfg.dataset.channels) == ("mnist", 28, 1)
    assert cfg.model.in_channels == 1
    # Paper 3 (spec 3.5) and paper 1 train MNIST without augmentation.
    assert (cfg.data.flip, cfg.data.pad, cfg.data.cutout) == (False, 0, 0)


def test_gzip_reading_is_exact(tmp_path) -> None:
    blob = np.array([0x801, 3], dtype=">i4").tobytes() + bytes([7, 0, 9])
    (tmp_path / "x.gz").write_bytes(gzip.compress(blob))
    assert mnist._idx_array(tmp_path / "x.gz", 0x801, 1).tolist() == [7, 0, 9]
