"""SVHN (.mat) and ImageNet32 (pickled batches) read from tiny files in the official formats."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from helpers_data import write_imagenet32_batches, write_svhn_mat

import binwrn.data.imagenet32 as imagenet32
import binwrn.data.svhn as svhn
from binwrn.data import load_splits
from binwrn.data.arrays import stack_parts
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import DataError

# ----------------------------------------------------------------------------- SVHN


def test_svhn_round_trip_maps_label_10_to_digit_0(tmp_path):
    written = write_svhn_mat(tmp_path, n_train=20, n_test=12, seed=3)
    train, test = load_splits("svhn", tmp_path, 10, verify_checksums=False)
    for split, name in ((train, "train"), (test, "test")):
        x, y = written[f"{name}_X"], written[f"{name}_y"][:, 0]
        assert split.images.shape == (len(y), 32, 32, 3) and split.images.dtype == np.uint8
        # image i, row r, column c, channel ch is X[r, c, ch, i] (MATLAB's layout)
        assert split.images[5, 7, 2, 1] == x[7, 2, 1, 5]
        assert np.array_equal(split.images, np.moveaxis(x, 3, 0))
        assert np.array_equal(split.labels, np.where(y == 10, 0, y))
    assert 10 in written["train_y"] and train.labels.max() == 9 and 0 in train.labels


def test_svhn_extra_is_off_by_default_and_appended_to_train_when_asked(tmp_path):
    written = write_svhn_mat(tmp_path, n_train=10, n_test=10, n_extra=6, seed=1)
    plain, _ = load_splits("svhn", tmp_path, 10, verify_checksums=False)
    both, _ = load_splits("svhn", tmp_path, 10, verify_checksums=False, use_extra=True)
    assert len(plain) == 10 and len(both) == 16
    assert np.array_equal(both.images[10:], np.moveaxis(written["extra_X"], 3, 0))
    assert np.array_equal(both.images[:10], plain.images)


def test_svhn_md5_table_is_torchvisions():
    from torchvision.datasets import SVHN

    assert svhn.OFFICIAL_MD5 == {name: md5 for _, name, md5 in SVHN.split_list.values()}


def test_svhn_wrong_md5_is_refused_before_the_file_is_parsed(tmp_path, monkeypatch):
    write_svhn_mat(tmp_path, n_train=10, n_test=10)
    official = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    monkeypatch.setattr(svhn, "OFFICIAL_MD5", official)
    parsed = []
    original = svhn._load_mat
    monkeypatch.setattr(svhn, "_load_mat", lambda path: (parsed.append(path.name),
                                                         original(path))[1])
    assert len(load_splits("svhn", tmp_path, 10)[0]) == 10  # official MD5s: read
    parsed.clear()
    test_file = tmp_path / "test_32x32.mat"
    test_file.write_bytes(test_file.read_bytes()[:-7])
    with pytest.raises(DataError, match="test_32x32.mat has MD5 .*data.verify_checksums=false"):
        load_splits("svhn", tmp_path, 10)
    assert parsed == []


def test_generated_svhn_files_fail_the_official_md5_by_default(tmp_path):
    write_svhn_mat(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DataError, match="train_32x32.mat has MD5 .* not the official e26dedcc"):
        load_splits("svhn", tmp_path, 10)


def test_missing_svhn_files_are_named_with_where_they_go(tmp_path):
    with pytest.raises(DataError, match=r"No svhn data under data.root=.*train_32x32.mat and "
                       r"test_32x32.mat .*housenumbers.*data.download=true"):
        load_splits("svhn", tmp_path / "nowhere", 10)
    write_svhn_mat(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DataError, match="extra_32x32.mat with dataset.use_extra=true"):
        load_splits("svhn", tmp_path, 10, verify_checksums=False, use_extra=True)


@pytest.mark.parametrize("damage, words", [("labels", "labels outside SVHN's 1-10"),
                                           ("not mat", "not a readable SVHN .mat file")])
def test_damaged_svhn_files_get_one_sentence(tmp_path, damage, words):
    from scipy.io import savemat

    write_svhn_mat(tmp_path, n_train=10, n_test=10)
    path = tmp_path / "train_32x32.mat"
    if damage == "labels":
        savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    else:
        path.write_bytes(b"MATLAB? no: " * 20)
    with pytest.raises(DataError, match=words):
        load_splits("svhn", tmp_path, 10, verify_checksums=False)


# ----------------------------------------------------------------------------- ImageNet32


@pytest.mark.parametrize("layout", ["official", "flat"])
def test_imagenet32_round_trip_with_labels_from_0(tmp_path, layout):
    written = write_imagenet32_batches(tmp_path, n_per_batch=3, n_val=7, seed=2, layout=layout)
    train, test = load_splits("imagenet32", tmp_path, 1000)
    assert (len(train), len(test)) == (30, 7)
    for split, name in ((train, "train"), (test, "val")):
        rows = written[f"{name}_data"]
        assert split.images.shape == (len(rows), 32, 32, 3) and split.images.dtype == np.uint8
        # pixel (y, x) of channel c is column c * 1024 + y * 32 + x, as CIFAR's rows
        assert split.images[2, 5, 7, 1] == rows[2, 1024 + 5 * 32 + 7]
        assert split.images[-1, 31, 0, 2] == rows[-1, 2048 + 31 * 32]
        assert np.array_equal(split.labels, written[f"{name}_labels"] - 1)


def test_imagenet32_images_reach_the_data_module_without_another_copy(tmp_path, monkeypatch):
    """3.9 GB of training images: the NCHW tensor the data module trains on is the very
    array the batches were copied into, once."""
    write_imagenet32_batches(tmp_path, n_per_batch=2, n_val=4)
    stacked = []
    monkeypatch.setattr(imagenet32, "stack_parts",
                        lambda parts: stacked.append(stack_parts(parts)) or stacked[-1])
    train, test = load_splits("imagenet32", tmp_path, 1000)
    data = DeviceAugmentedData(train, test, batch_size=4)
    images = data.train_set.tensors[0]
    assert images.shape == (20, 3, 32, 32) and images.is_contiguous()
    assert images.data_ptr() == stacked[0].ctypes.data
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(train.images))


def test_imagenet32_pickle_payload_is_refused_and_never_runs(tmp_path):
    write_imagenet32_batches(tmp_path, n_per_batch=2, n_val=4)
    marker = tmp_path / "payload_ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "Imagenet32_val" / "val_data").write_bytes(
        pickle.dumps({"data": Exploit(), "labels": [1]}))
    with pytest.raises(DataError, match="val_data is not a readable ImageNet32 batch .*open"):
        load_splits("imagenet32", tmp_path, 1000)
    assert not marker.exists()


def test_imagenet32_labels_beyond_1000_are_refused(tmp_path):
    write_imagenet32_batches(tmp_path, n_per_batch=2, n_val=4)
    path = tmp_path / "Imagenet32_train" / "train_data_batch_4"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 1001]}))
    with pytest.raises(DataError, match="train_data_batch_4 has labels outside .*1-1000"):
        load_splits("imagenet32", tmp_path, 1000)


def test_missing_imagenet32_files_are_named_with_where_they_go(tmp_path):
    with pytest.raises(DataError, match=r"No imagenet32 data .*Imagenet32_train/train_data_batch"
                       r"_1 .*Imagenet32_val/val_data .*image-net.org"):
        load_splits("imagenet32", tmp_path, 1000)
    with pytest.raises(DataError, match="cannot be downloaded for you .*login"):
        load_splits("imagenet32", tmp_path, 1000, download=True)
    write_imagenet32_batches(tmp_path, n_per_batch=2, n_val=4)
    (tmp_path / "Imagenet32_train" / "train_data_batch_7").unlink()
    with pytest.raises(DataError, match="Imagenet32_train lacks train_data_batch_7: add"):
        load_splits("imagenet32", tmp_path, 1000)
