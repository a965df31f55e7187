"""Paper 3's layer orders as its official code ships them (spec 3.6), without torch: the
orders `iterative.order=ascend_official|descend_official` train (models/layer_order.py) and
the sensitivity report sets beside binwrn's own ranking (report/paper.py re-exports them)."""

# Paper 3 (Lan 2021), spec 3.6: the guided "ascend" orders the official code ships ([IT]
# `models/*_layers_ascend.json`, from its sensitivity pre-training on CIFAR-10), as 1-based
# layer numbers in forward order ("descend" is the reverse). They are paper 3's only public
# results: no accuracy of any run is (spec 3.1). For the MLPs the code runs all 6 orders.
# ResNet-21's list comes from its ImageNet sensitivity pre-training (spec 3.6).
PAPER3_ASCEND = {
    "vgg5": (5, 4, 1, 3, 2),
    "vgg9": (8, 9, 1, 7, 6, 3, 5, 2, 4),
    "resnet20": (19, 6, 5, 7, 1, 9, 12, 4, 8, 3, 14, 11, 15, 18, 2, 13, 10, 16, 17, 20),
    "resnet21": (13, 10, 5, 14, 9, 3, 2, 7, 18, 6, 17, 4, 1, 16, 15, 20, 11, 12, 19, 8, 21),
}
