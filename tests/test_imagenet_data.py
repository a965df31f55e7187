"""ImageNet in the official folder layout: listing, refusals, decoding, crops, data module.

Every tree here is written by binwrn.bench.synthetic_imagenet in the release's layout and
naming (<root>/train/<wnid>/<wnid>_<n>.JPEG, <root>/val/<wnid>/ILSVRC2012_val_<n>.JPEG).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from binwrn.bench.synthetic_imagenet import WNIDS, photo_like, write_jpeg_tree
from binwrn.data.imagenet import TARBALLS, list_imagenet
from binwrn.data.imagenet_loader import CroppedImages, StreamingImageData
from binwrn.data.imagenet_transforms import CropSettings, UnreadableImage, read_rgb
from binwrn.errors import ConfigError, DataError

SMALL = CropSettings(size=32, scale_range=(32, 48), eval_resize=36,
                     multi_crop_scales=(32, 36, 40, 44, 48))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("imagenet")
    return root, write_jpeg_tree(root, classes=3, train_per_class=4, val_per_class=2)


def test_listing_follows_the_sorted_wnids(tree):
    root, written = tree
    train, val = list_imagenet(root, 3)
    assert train.classes == val.classes == tuple(WNIDS[:3])
    assert [Path(train.path(i)) for i in range(len(train))] == [p for p, _ in written["train"]]
    assert train.labels.tolist() == [label for _, label in written["train"]]
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_limits_keep_every_class(tree):
    train, val = list_imagenet(tree[0], 3, train_limit=6, test_limit=3)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2] and val.labels.tolist() == [0, 1, 2]


def _copy(tree, tmp_path: Path) -> Path:
    root = tmp_path / "imagenet"
    shutil.copytree(tree[0], root)
    return root


def _flatten_val(root: Path) -> None:
    """The official val tarball's layout: 50,000 files in one folder."""
    for folder in list((root / "val").iterdir()):
        for image in folder.iterdir():
            image.rename(root / "val" / image.name)
        folder.rmdir()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda root: shutil.rmtree(root / "val"), r"No ImageNet val folder under data.root=.*"
                                               r"/train/<wnid>/\*.JPEG and .*/val/<wnid>"),
    (_flatten_val, r"val holds 6 images but no class folders: expected .*/val/<wnid>/\*.JPEG"),
    (lambda root: shutil.rmtree(root / "train" / WNIDS[2]),
     "train has 2 class folders but dataset.num_classes is 3"),
    (lambda root: [p.unlink() for p in (root / "train" / WNIDS[1]).iterdir()],
     f"{WNIDS[1]} holds no images"),
    (lambda root: (root / "val" / WNIDS[2]).rename(root / "val" / "n09999999"),
     "name different class folders"),
])
def test_incomplete_trees_get_one_sentence(tree, tmp_path, damage, message):
    root = _copy(tree, tmp_path)
    damage(root)
    with pytest.raises(DataError, match=message) as caught:
        list_imagenet(root, 3)
    assert "\n" not in str(caught.value)


def test_missing_root_and_wrong_class_count(tree, tmp_path):
    with pytest.raises(DataError, match="No data.root is set for imagenet"):
        list_imagenet(None, 3)
    with pytest.raises(DataError, match=r"No ImageNet train or val folder .*<wnid>"):
        list_imagenet(tmp_path / "nowhere", 1000)
    with pytest.raises(DataError, match="has 3 class folders but dataset.num_classes is 1000"):
        list_imagenet(tree[0], 1000)


def test_official_tarballs_are_checked_against_their_md5(tmp_path):
    assert TARBALLS["val"] == ("ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622")
    for name, _ in TARBALLS.values():
        (tmp_path / name).write_bytes(b"not the release")
    with pytest.raises(DataError, match="data.download=true extracts ILSVRC2012_devkit"):
        list_imagenet(tmp_path, 1000)
    with pytest.raises(DataError, match=r"ILSVRC2012_devkit_t12.tar.gz does not have the "
                                        r"official MD5 fa75699e"):
        list_imagenet(tmp_path, 1000, extract=True)
    (tmp_path / TARBALLS["train"][0]).unlink()
    with pytest.raises(DataError, match="needs the official ILSVRC2012_img_train.tar"):
        list_imagenet(tmp_path, 1000, extract=True)
    assert not (tmp_path / "train").exists()  # nothing was extracted


JPEGS = Path(__file__).with_name("jpeg")
# sha256 of the (3, H, W) uint8 pixels torchvision's decode_image(..., ImageReadMode.RGB) gave
# for each file of tests/jpeg/ (the reader's decoder until torchvision deprecated it), on
# 2026-12-07 with torchvision 0.29.2 and 0.26.0 alike. The files are committed, not generated,
# so an encoder's update cannot move them.
TORCHVISION_PIXELS = {
    "cmyk.JPEG": "4a2749eba9baecd6a4c3a7686e3b548685388d68d70d645b0423751fade025a1",
    "grey.JPEG": "1c99e74bfff8e5b4f320d070a025e4ba5a057dbf3c49247feb7e84d59e5d92bc",
    "odd-size.JPEG": "f9cdff5ce007bee3e2224bdaeb80ceed1b14ff1378c7b05afad836349f8cb755",
    "png-named.JPEG": "d287e6a1effb55286c0596c3aba5d664130e4cdc08358420079c2d053fc83e8e",
    "progressive.JPEG": "aecb042bcf3d2ed3e1ffbced5eeffdbe24485174ca453097b3856989cbd72e6d",
    "rgb420.JPEG": "56854ea556fa81f6ff2d17011285685cad8581dd876282d2aeb67ab511cc6fee",
    "rgb422.JPEG": "97bd5eb0dcc9ded8bb44b6a3c20a0dd5e51af68bf27b7dccb4628b16016f8038",
    "rgb444.JPEG": "9b15a9848c07e11f1c24fa37d263dbcce4167a0ce9d4037dcdea7dee12c2de4e",
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PIXELS))
def test_pillow_gives_the_pixels_torchvision_gave(name):
    """4:2:0, 4:2:2, 4:4:4, progressive, odd-sized, grey, CMYK and a PNG named .JPEG."""
    pixels = read_rgb(str(JPEGS / name))
    assert pixels.dtype == torch.uint8 and pixels.shape[0] == 3
    digest = hashlib.sha256(pixels.contiguous().numpy().tobytes()).hexdigest()
    assert digest == TORCHVISION_PIXELS[name]
    if name == "grey.JPEG":
        assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of "
                            "TorchVision are deprecated:DeprecationWarning")
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_pillow_equals_torchvision_on_photo_sized_jpegs(tmp_path, mode):
    """Against the installed torchvision's decoder itself, on ImageNet-sized images, for as
    long as torchvision ships it (deprecated since 0.29)."""
    io = pytest.importorskip("torchvision.io")
    if not hasattr(io, "decode_image"):
        pytest.skip("this torchvision no longer decodes images; TORCHVISION_PIXELS still holds")
    rng = np.random.default_rng(7)
    for index, (width, height, options) in enumerate([
            (500, 375, {"quality": 90}), (333, 500, {"quality": 75, "subsampling": 1}),
            (640, 427, {"quality": 95, "subsampling": 0, "progressive": True})]):
        path = tmp_path / f"{index}.{mode}.JPEG"
        Image.fromarray(photo_like(rng, width, height)).convert(mode).save(
            path, format="JPEG", **options)
        before = io.decode_image(io.read_file(str(path)), mode=io.ImageReadMode.RGB)
        assert torch.equal(read_rgb(str(path)), before)


def test_unreadable_image_is_one_sentence_even_from_a_worker(tree, tmp_path):
    root = _copy(tree, tmp_path)
    broken = sorted((root / "train" / WNIDS[0]).iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:200])
    train, _ = list_imagenet(root, 3)
    with pytest.raises(UnreadableImage, match=f"Cannot read image {broken}"):
        read_rgb(str(broken))
    loader = DataLoader(CroppedImages(train, SMALL, "train"), batch_size=4, num_workers=1)
    with pytest.raises(DataError) as caught:
        list(loader)
    assert str(caught.value).startswith(f"Cannot read image {broken}")
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_train_crops_stay_inside_the_image():
    image = torch.full((3, 30, 70), 200, dtype=torch.uint8)  # any border would show
    for settings in (SMALL, CropSettings(size=32, train_crop="random_resized")):
        for _ in range(20):
            crop = settings.train_crop_of(image)
            assert crop.shape == (3, 32, 32) and crop.dtype == torch.uint8
            assert (crop == 200).all()


def test_scale_jitter_at_its_smallest_scale_keeps_the_whole_shorter_side():
    """S = crop size: the crop spans the full shorter side (a square image: all of it)."""
    image = torch.from_numpy(photo_like(np.random.default_rng(2), 48, 48)).permute(2, 0, 1)
    settings = CropSettings(size=32, scale_range=(32, 32), flip=False)
    expected = TF.resize(image, [32, 32], antialias=True)
    assert torch.equal(settings.train_crop_of(image), expected)
    flipping = CropSettings(size=32, scale_range=(32, 32))
    outcomes = set()
    for _ in range(30):
        crop = flipping.train_crop_of(image)
        outcomes.add("plain" if torch.equal(crop, expected) else
                     "mirrored" if torch.equal(crop, expected.flip(-1)) else "other")
    assert outcomes == {"plain", "mirrored"}


def test_centre_crop_is_the_middle_of_the_resized_image():
    # Columns numbered 0..63; eval_resize = the shorter side, so no resampling blurs them.
    image = torch.arange(64, dtype=torch.uint8).expand(3, 48, 64).contiguous()
    crop = CropSettings(size=32, eval_resize=48).centre_crop_of(image)
    assert torch.equal(crop, image[:, 8:40, 16:48])


def test_multi_crops_are_windows_at_each_scale():
    image = torch.from_numpy(photo_like(np.random.default_rng(3), 60, 40)).permute(2, 0, 1)
    corners = CropSettings(size=32, multi_crop_scales=(40,) * 5,
                           multi_crop_positions="corners_center")
    crops = corners.multi_crops_of(image, seed=0)  # scale 40 = the shorter side: no resize
    assert crops.shape == (25, 3, 32, 32)
    assert torch.equal(crops[0], image[:, :32, :32]) and torch.equal(crops[3], image[:, 8:, 28:])
    assert torch.equal(crops[4], image[:, 4:36, 14:46])  # the centre
    drawn = CropSettings(size=32, multi_crop_scales=(40,) * 5).multi_crops_of(image, seed=7)
    windows = {(t, left) for t in range(9) for left in range(29)
               for c in drawn if torch.equal(c, image[:, t:t + 32, left:left + 32])}
    assert len(windows) > 5  # 25 windows of the image, not all the same one
    assert torch.equal(drawn, CropSettings(size=32, multi_crop_scales=(40,) * 5)
                       .multi_crops_of(image, seed=7))  # the same crops at every evaluation
    scaled = SMALL.multi_crops_of(image, seed=7)
    assert scaled.shape == (25, 3, 32, 32)


@pytest.mark.parametrize(("settings", "message"), [
    ({"eval_resize": 200}, "dataset.eval_resize resizes a shorter side to 200"),
    ({"scale_range": (100, 480)}, "dataset.scale_range resizes"),
    ({"scale_range": (480, 256)}, r"dataset.scale_range=\[480, 256\]"),
    ({"train_crop": "inception"}, "dataset.train_crop=inception"),
    ({"multi_crop_positions": "grid"}, "dataset.multi_crop_positions=grid"),
    ({"decoder": "opencv"}, "dataset.decoder=opencv"),
    ({"decoder": "torchvision"}, "dataset.decoder=torchvision is not supported: use one of pil"),
])
def test_bad_crop_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        CropSettings(**settings)


def test_data_module_batches(tree):
    train, val = list_imagenet(tree[0], 3)
    data = StreamingImageData(train, val, SMALL, batch_size=5, eval_batch_size=50, workers=0)
    batches = list(data.train_dataloader())
    assert len(batches) == 2  # 12 images, full batches only
    images, labels = batches[0]
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.uint8
    prepared, _ = data.on_after_batch_transfer((images, labels), 0)
    assert prepared.dtype == torch.float32 and prepared.max() <= 255 and prepared.max() > 1
    (test_images, test_labels), = list(data.test_dataloader())
    assert test_images.shape == (6, 3, 32, 32) and test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    multi = list(data.multi_crop_dataloader())  # 50 crops per batch: 2 images of 25
    assert [tuple(b.shape) for b, _ in multi] == [(2, 25, 3, 32, 32)] * 3
