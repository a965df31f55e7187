"""Data readers: official CIFAR pickles, ImageFolder trees (with cache), embedded digits."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_data import write_cifar10_pickles, write_cifar100_pickles, write_image_folder

import binwrn.data.cifar_pickle as cifar_pickle
import binwrn.data.image_folder as image_folder
from binwrn.data import load_splits
from binwrn.data.digits import read_digits
from binwrn.errors import ConfigError, DataError

CLASSES = ["truck", "airplane", "ship", "cat", "frog", "bird", "horse", "deer", "dog",
           "automobile"]  # deliberately unsorted on disk


def _expected_images(data: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) from official rows, written out element by element from the format."""
    n = len(data)
    i, y, x, c = np.meshgrid(np.arange(n), np.arange(32), np.arange(32), np.arange(3),
                             indexing="ij")
    return data[i, c * 1024 + y * 32 + x]


# ----------------------------------------------------------------------------- CIFAR pickles


def _load_own_pickles(*args, **kwargs):
    """load_splits on the generated pickles, whose MD5 cannot be the official one."""
    return load_splits(*args, verify_checksums=False, **kwargs)


def test_cifar10_round_trip(tmp_path):
    written = write_cifar10_pickles(tmp_path / "data", n_train_per_batch=12, n_test=15, seed=3)
    train, test = _load_own_pickles("cifar10", tmp_path / "data", 10, cache_dir=tmp_path / "cache")
    assert train.images.shape == (60, 32, 32, 3) and test.images.shape == (15, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    for split, name in ((train, "train"), (test, "test")):
        data = written[f"{name}_data"]
        assert np.array_equal(split.images, _expected_images(data))
        assert np.array_equal(split.labels, written[f"{name}_labels"])
    # spot checks of the formula, in plain indexing
    d = written["train_data"]
    assert train.images[0, 0, 0, 0] == d[0, 0]
    assert train.images[13, 5, 7, 1] == d[13, 1024 + 5 * 32 + 7]
    assert train.images[59, 31, 31, 2] == d[59, 3071]


def test_cifar10_folder_given_directly(tmp_path):
    written = write_cifar10_pickles(tmp_path / "data", n_train_per_batch=4, n_test=4, seed=1)
    train, test = _load_own_pickles("cifar10", written["folder"], 10, cache_dir=tmp_path / "cache")
    assert np.array_equal(test.images, _expected_images(written["test_data"]))
    assert len(train) == 20


def test_cifar100_round_trip_uses_fine_labels(tmp_path):
    written = write_cifar100_pickles(tmp_path, n_train=120, n_test=40, seed=5)
    train, test = _load_own_pickles("cifar100", tmp_path, 100, cache_dir=tmp_path / "cache")
    for split, name in ((train, "train"), (test, "test")):
        assert np.array_equal(split.images, _expected_images(written[f"{name}_data"]))
        assert np.array_equal(split.labels, written[f"{name}_labels"])
        assert not np.array_equal(split.labels, written[f"{name}_coarse"])


def test_cifar_labels_beyond_num_classes(tmp_path):
    write_cifar100_pickles(tmp_path, n_train=100, n_test=100, seed=0)
    with pytest.raises(DataError, match="labels beyond"):
        _load_own_pickles("cifar100", tmp_path, 10, cache_dir=tmp_path / "cache")


def test_cifar_train_limit_is_class_balanced(tmp_path):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=20, n_test=20, seed=2)
    train, test = _load_own_pickles("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache",
                              train_limit=30, test_limit=10)
    assert len(train) == 30 and len(test) == 10
    assert np.array_equal(np.bincount(train.labels, minlength=10), [3] * 10)
    assert np.array_equal(np.bincount(test.labels, minlength=10), [1] * 10)
    # The first three of each class, kept in their original order.
    labels = written["train_labels"]
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:3] for c in range(10)]))
    assert np.array_equal(train.labels, labels[keep])
    assert np.array_equal(train.images, _expected_images(written["train_data"][keep]))


def test_missing_root_names_data_root(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        _load_own_pickles("cifar10", tmp_path / "nowhere", 10, cache_dir=tmp_path / "cache")


def test_missing_train_batch(tmp_path):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    (written["folder"] / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        _load_own_pickles("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")


def test_truncated_batch(tmp_path):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    path = written["folder"] / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch"):
        _load_own_pickles("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")


def test_pickle_with_forbidden_global_is_refused(tmp_path):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    path = written["folder"] / "data_batch_1"
    # An otherwise valid batch: only the extra global makes it unacceptable.
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "hook": os.system}
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match="data_batch_1"):
        _load_own_pickles("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")


class _Exploit:
    """Unpickling this runs os.mkdir(marker) under a plain pickle.load."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickle_payload_does_not_run(tmp_path):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    marker = tmp_path / "payload_ran"
    blob = pickle.dumps({"data": _Exploit(marker), "labels": [0, 1]})
    # Sanity: the payload is live under an unrestricted unpickler.
    pickle.loads(blob)
    assert marker.is_dir()
    marker.rmdir()

    (written["folder"] / "test_batch").write_bytes(blob)
    with pytest.raises(DataError, match="test_batch"):
        _load_own_pickles("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")
    assert not marker.exists()


def test_official_md5_table_is_torchvisions():
    from torchvision.datasets import CIFAR10, CIFAR100

    for name, cls in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        assert cifar_pickle.OFFICIAL_MD5[name] == dict(cls.train_list + cls.test_list)


def _unpickled_files(monkeypatch) -> list[str]:
    seen: list[str] = []
    original = cifar_pickle._load_batch
    monkeypatch.setattr(cifar_pickle, "_load_batch",
                        lambda path, key: (seen.append(path.name), original(path, key))[1])
    return seen


@pytest.mark.parametrize("damage", ["truncated", "payload"])
def test_wrong_md5_is_refused_before_anything_is_unpickled(tmp_path, monkeypatch, damage):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    folder = written["folder"]
    # Pretend the generated files are the official ones, so only the damage differs.
    official = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(cifar_pickle.OFFICIAL_MD5, "cifar10", official)
    marker = tmp_path / "payload_ran"
    path = folder / "data_batch_3"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.write_bytes(pickle.dumps({"data": _Exploit(marker), "labels": [0, 1]}))
    unpickled = _unpickled_files(monkeypatch)
    with pytest.raises(DataError, match="data_batch_3 has MD5 .*data.verify_checksums=false"):
        load_splits("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")
    assert unpickled == [] and not marker.exists()


def test_matching_md5_loads(tmp_path, monkeypatch):
    written = write_cifar10_pickles(tmp_path, n_train_per_batch=3, n_test=4, seed=9)
    folder = written["folder"]
    official = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setitem(cifar_pickle.OFFICIAL_MD5, "cifar10", official)
    unpickled = _unpickled_files(monkeypatch)
    train, test = load_splits("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")
    assert np.array_equal(test.images, _expected_images(written["test_data"]))
    assert unpickled == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def test_generated_pickles_fail_the_official_md5_by_default(tmp_path):
    write_cifar10_pickles(tmp_path, n_train_per_batch=2, n_test=2)
    with pytest.raises(DataError, match="not the official"):
        load_splits("cifar10", tmp_path, 10, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- ImageFolder


def test_image_folder_round_trip_and_class_order(tmp_path):
    root = tmp_path / "tree"
    written = write_image_folder(root, CLASSES, n_train_per_class=2, n_test_per_class=1, seed=7)
    cache = tmp_path / "cache"
    train, test = load_splits("cifar10", root, 10, cache_dir=cache)
    for split, name in ((train, "train"), (test, "test")):
        images, labels = written[name]
        assert split.images.dtype == np.uint8 and split.images.shape == images.shape
        assert np.array_equal(split.images, images)
        assert np.array_equal(split.labels, labels)
    # label = sorted position: "airplane" is 0 and "truck" is 9, whatever the order on disk
    from PIL import Image

    first_truck = np.asarray(Image.open(root / "test" / "truck" / "00000.png").convert("RGB"))
    assert np.array_equal(test.images[test.labels == 9][0], first_truck)
    first_airplane = np.asarray(Image.open(root / "train" / "airplane" / "00000.png"))
    assert np.array_equal(train.images[0], first_airplane) and train.labels[0] == 0


def test_image_folder_cache_is_created_and_used(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    write_image_folder(root, CLASSES, n_train_per_class=2, n_test_per_class=1, seed=8)
    cache = tmp_path / "cache"
    first = load_splits("cifar10", root, 10, cache_dir=cache)
    # One .npy per split, each beside the lock its decoding held (data/file_lock.py).
    cached = sorted(p.name for p in cache.iterdir() if p.suffix != ".lock")
    assert len(cached) == 2
    assert sorted(p.stem for p in cache.glob("*.lock")) == sorted(n[:-4] for n in cached)
    assert any(n.startswith("imagefolder-train") and n.endswith(".npy") for n in cached)
    assert any(n.startswith("imagefolder-test") and n.endswith(".npy") for n in cached)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(image_folder, "_decode_parallel", no_decoding)
    second = load_splits("cifar10", root, 10, cache_dir=cache)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.images, b.images)
        assert np.array_equal(a.labels, b.labels)
    assert sorted(p.name for p in cache.iterdir() if p.suffix != ".lock") == cached


def test_image_folder_cache_invalidated_by_changed_file(tmp_path):
    from PIL import Image

    root = tmp_path / "tree"
    write_image_folder(root, CLASSES, n_train_per_class=1, n_test_per_class=1, seed=9)
    cache = tmp_path / "cache"
    load_splits("cifar10", root, 10, cache_dir=cache)
    new = np.full((32, 32, 3), 77, dtype=np.uint8)
    path = root / "test" / "cat" / "00000.png"
    Image.fromarray(new).save(path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    _, test = load_splits("cifar10", root, 10, cache_dir=cache)
    assert np.array_equal(test.images[sorted(CLASSES).index("cat")], new)


def test_image_folder_train_limit_is_class_balanced(tmp_path):
    root = tmp_path / "tree"
    written = write_image_folder(root, CLASSES, n_train_per_class=3, n_test_per_class=2, seed=10)
    train, test = load_splits("cifar10", root, 10, cache_dir=tmp_path / "cache",
                              train_limit=10, test_limit=20)
    assert len(train) == 10 and len(test) == 20
    assert np.array_equal(train.labels, np.arange(10))
    images, labels = written["train"]
    firsts = np.stack([images[labels == c][0] for c in range(10)])
    assert np.array_equal(train.images, firsts)


def test_image_folder_wrong_class_count(tmp_path):
    root = tmp_path / "tree"
    write_image_folder(root, ["a", "b", "c"], n_train_per_class=1, n_test_per_class=1)
    with pytest.raises(DataError, match="3 class folders"):
        load_splits("cifar10", root, 10, cache_dir=tmp_path / "cache")


def test_image_folder_splits_with_different_class_names(tmp_path):
    root = tmp_path / "tree"
    write_image_folder(root, ["a", "b", "c"], n_train_per_class=1, n_test_per_class=1)
    (root / "test" / "c").rename(root / "test" / "d")
    with pytest.raises(DataError, match="different classes"):
        load_splits("cifar10", root, 3, cache_dir=tmp_path / "cache")


def test_unset_root_names_data_root():
    with pytest.raises(DataError, match="data.root"):
        load_splits("cifar10", None, 10)


def test_image_folder_unreadable_png(tmp_path):
    root = tmp_path / "tree"
    write_image_folder(root, CLASSES, n_train_per_class=2, n_test_per_class=1)
    bad = root / "train" / "dog" / "00001.png"
    bad.write_bytes(b"this is not a PNG file at all" * 10)
    with pytest.raises(DataError) as info:
        load_splits("cifar10", root, 10, cache_dir=tmp_path / "cache")
    assert str(bad) in str(info.value)


def test_image_folder_wrong_image_size(tmp_path):
    root = tmp_path / "tree"
    write_image_folder(root, ["a", "b"], n_train_per_class=1, n_test_per_class=1, size=28)
    with pytest.raises(DataError, match="28x28"):
        load_splits("cifar10", root, 2, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- digits, names


def test_digits():
    train, test = load_splits("digits", None, 10)
    assert train.images.shape == (1437, 32, 32, 3) and test.images.shape == (360, 32, 32, 3)
    assert train.images.dtype == np.uint8
    assert train.images.min() == 0 and train.images.max() == 255
    assert set(np.unique(train.labels)) == set(range(10))
    assert set(np.unique(test.labels)) == set(range(10))
    # grey replicated to RGB, each source pixel a 4x4 block
    assert np.array_equal(train.images[..., 0], train.images[..., 2])
    blocks = train.images[:, ::4, ::4, 0].repeat(4, axis=1).repeat(4, axis=2)
    assert np.array_equal(blocks, train.images[..., 0])
    # the split is fixed
    again, _ = load_splits("digits", None, 10)
    assert np.array_equal(again.labels, train.labels)


def test_digits_limits():
    train, test = load_splits("digits", None, 10, train_limit=100, test_limit=50)
    assert len(train) == 100 and len(test) == 50
    assert np.bincount(train.labels, minlength=10).tolist() == [10] * 10


def test_unknown_dataset(tmp_path):
    with pytest.raises(ConfigError, match="imagenet"):
        load_splits("imagenet", tmp_path, 1000, cache_dir=tmp_path / "cache")


def test_digits_are_scikit_learns_split_without_importing_it():
    """The embedded default reads scikit-learn's file and its written-out split order; both
    must stay exactly what load_digits and the stratified train_test_split give."""
    probe = ("import sys; from binwrn.data.digits import read_digits; read_digits(); "
             "print('sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"

    from sklearn.datasets import load_digits  # here: 1.6 s of import for this test alone
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    grey = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    rgb = np.repeat(grey.repeat(4, axis=1).repeat(4, axis=2)[..., None], 3, axis=3)
    x_tr, x_te, y_tr, y_te = train_test_split(rgb, digits.target, test_size=0.2,
                                              random_state=0, stratify=digits.target)
    train, test = read_digits()
    for ours, theirs in ((train.images, x_tr), (train.labels, y_tr),
                         (test.images, x_te), (test.labels, y_te)):
        np.testing.assert_array_equal(ours, theirs)
    assert train.images.shape == (1437, 32, 32, 3) and test.labels.dtype == np.int64
