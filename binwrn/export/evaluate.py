"""The body of binwrn-eval: the accuracy of a packed model itself, on a whole test set.

Three runtimes read the same file: `torch` (the rebuilt WideResNet in eval mode), `numpy`
(the reference runtime) and `onnx` (the exported graph in onnxruntime); `qonnx` runs a QONNX
file written by `binwrn-export --qonnx` (which carries the `.bwn` header's data and source)
in qonnx's own executor, after qonnx's cleanup. The test set is the
one the run was measured on (data set and test_limit from the file's header) unless the
overrides say otherwise, so the accuracy can be compared with the run's test/acc.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from binwrn.data.loading import eval_batches, load_data
from binwrn.errors import ConfigError
from binwrn.export.format import PackedModel
from binwrn.export.run_config import RunConfig

RUNTIMES = ("torch", "numpy", "onnx", "qonnx")
SAME_ACC = 1e-6  # the run's test/acc is a float32 mean of per-batch accuracies


def default_overrides(header: dict, given: list[str]) -> list[str]:
    """dataset=<trained on> and data.test_limit=<as measured>, unless `given` sets them."""
    data, keys = header.get("data", {}), {item.split("=", 1)[0] for item in given}
    defaults = []
    if data.get("dataset") and "dataset" not in keys:
        defaults.append(f"dataset={data['dataset']}")
    if "data.test_limit" not in keys:
        limit = data.get("test_limit")
        defaults.append(f"data.test_limit={'null' if limit is None else int(limit)}")
    return defaults + given


def packed_runner(packed: PackedModel, runtime: str, device: str = "cpu"
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """Images -> logits in `runtime`, built once for all the test set's chunks (`torch` on
    `device`; the others on the CPU). For `qonnx`, `packed` is a `qonnx_export.QonnxFile`."""
    if runtime == "qonnx":
        from binwrn.export.qonnx_export import cleaned, qonnx_logits

        wrapper = cleaned(packed.model)
        return lambda images: qonnx_logits(wrapper, images, batch_size=250)
    if runtime == "numpy":
        from binwrn.export.numpy_runtime import NumpyWRN

        return NumpyWRN(packed).logits
    if runtime == "onnx":
        from binwrn.export.onnx_export import onnx_logits, to_onnx

        graph = to_onnx(packed).SerializeToString()
        return lambda images: onnx_logits(graph, images)
    if runtime == "torch":
        from binwrn.export.pack import rebuild_wrn, torch_logits

        model = rebuild_wrn(packed)
        return lambda images: torch_logits(model, images, device=device)
    raise ConfigError(f"--runtime {runtime} is unknown: use one of {', '.join(RUNTIMES)}.")


def evaluate_packed(packed: PackedModel, config: RunConfig, runtime: str = "torch",
                    name: str = "", device: str = "cpu") -> dict:
    """Accuracy of `packed` on the whole test set `config` names."""
    data = config.data
    classes = packed.header["model"]["num_classes"]
    if data.num_classes != classes:
        raise ConfigError(f"The packed model has {classes} classes but "
                          f"dataset={data.name} has {data.num_classes}: pass "
                          "the data set it was trained on.")
    channels = packed.header["model"].get("in_channels", 3)
    if config.channels != channels:
        raise ConfigError(f"The packed model takes {channels}-channel images but "
                          f"dataset={data.name} has {config.channels}: "
                          "pass the data set it was trained on.")
    run = packed_runner(packed, runtime, device)
    _, test = load_data(data)
    # A chunk at a time: ImageNet's val set is decoded as it is scored, never whole.
    predicted = np.concatenate([run(images).argmax(axis=1)
                                for images in eval_batches(test, config.crops)]
                               or [np.zeros(0, int)])
    correct = int((predicted == test.labels).sum())
    acc = correct / max(len(test), 1)
    recorded = packed.header.get("source", {}).get("test_acc")
    return {"file": name, "runtime": runtime, "dataset": data.name, "images": len(test),
            "correct": correct, "acc": acc, "error_pct": 100.0 * (1.0 - acc),
            "recorded_acc": recorded,
            "equals_recorded": recorded is not None and abs(acc - recorded) <= SAME_ACC}
