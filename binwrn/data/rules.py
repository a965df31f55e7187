"""The allowed values of the data settings, without torch: the augmentation and ImageNet
transforms that use them (augment.py, imagenet_transforms.py) and the config check that
answers before torch loads (binwrn/configuration/checks.py) both read them here."""

PAD_FILLS = ("random", "zero", "reflect")  # data.pad_fill (augment.py)
TRAIN_CROPS = ("scale_jitter", "random_resized")  # dataset.train_crop (imagenet_transforms.py)
POSITIONS = ("random", "corners_center")  # dataset.multi_crop_positions
# Pillow (libjpeg-turbo inside its wheels). torchvision's decode_image, the default before, is
# deprecated since torchvision 0.29 and due for removal; Pillow gives the same pixels
# (tests/test_imagenet_data.py) at the throughput docs/imagenet-loader.md records.
DECODERS = ("pil",)  # dataset.decoder
