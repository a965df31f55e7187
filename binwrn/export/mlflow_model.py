"""`binwrn-export <run id> --register NAME`: the packed model as an MLflow Model, logged on the
run it came from and registered as a version of NAME.

The MLflow Model is a pyfunc (`served.PackedWRN`) over the `.bwn` file: loading it builds the
ONNX graph from the file in memory and its `predict` runs that in ONNX Runtime, so serving it
needs NumPy, onnx, onnxruntime and MLflow, not torch. The model carries binwrn's torch-free
modules in its `code/` folder and says so in its pip requirements. With `--qonnx` the QONNX
file is one more artifact of the model, beside the `.bwn` (its path is a tag of the version);
with `--onnx` the ONNX graph is logged beside it with MLflow's onnx flavor (not registered;
its URI is a tag of the version).

Nothing is registered half-way: the name and alias are checked before anything is written, and
if logging or registering fails after that, what was created is deleted again.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from binwrn.environment import restored_environ
from binwrn.errors import ConfigError, DataError
from binwrn.export.served import INPUT

EXAMPLE_IMAGES = 2  # real test images in the input example (~150 KB of JSON)
SERVED_MODEL = "packed"  # the logged models' names on the run
ONNX_MODEL = "onnx"


@dataclass
class Registered:
    name: str
    version: str
    alias: str | None
    model_uri: str  # models:/<model id> of the logged pyfunc
    onnx_uri: str | None = None
    qonnx_file: str | None = None  # the QONNX file's path in the version's files
    served_bytes: dict[str, int] = field(default_factory=dict)  # part -> bytes

    @property
    def registry_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else \
            f"models:/{self.name}/{self.version}"


def check_names(name: str, alias: str | None) -> None:
    """Refuse a model name or alias the registry would refuse, before anything is written."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils import validation
    from mlflow.utils.validation import _validate_model_name

    # MLflow's own checks (private): named _validate_model_alias_name(_reserved) up to 3.17,
    # _validate_alias_name(_reserved) from 3.18.
    _validate_model_alias_name = getattr(validation, "_validate_model_alias_name", None) \
        or validation._validate_alias_name
    _validate_model_alias_name_reserved = getattr(
        validation, "_validate_model_alias_name_reserved", None) \
        or validation._validate_alias_name_reserved

    try:
        _validate_model_name(name)
    except MlflowException as err:
        raise ConfigError(f"--register {name!r} is refused by the model registry "
                          f"({_first_line(err)}): choose a name such as binwrn-wrn10-1.") from None
    if alias is None:
        return
    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as err:
        raise ConfigError(f"--alias {alias!r} is refused by the model registry "
                          f"({_first_line(err)}): choose an alias such as champion.") from None


def _first_line(err: Exception) -> str:
    return str(getattr(err, "message", err)).splitlines()[0].rstrip(".")


def served_code(folder: Path) -> Path:
    """A copy of the binwrn modules `served.py` imports (transitively, and their packages'
    __init__ files) under `folder/binwrn`: the model's `code/`, so that serving needs no
    installed binwrn. Found from the import statements, so a module added later travels too."""
    site = Path(find_spec("binwrn").origin).parent.parent  # the folder holding binwrn/
    todo, seen = ["binwrn.export.served"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages
        path = site.joinpath(*parts)
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        target = folder / path.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            todo += [n for n in names if n.split(".")[0] == "binwrn"]
    return folder / "binwrn"


def signature(image_shape: tuple[int, ...], classes: int):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *image_shape), INPUT)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes), "logits"),
                        TensorSpec(np.dtype(np.float32), (-1, classes), "probabilities")]))


def as_pixels(images: np.ndarray) -> np.ndarray:
    """float32 NCHW raw pixels (what the models take) -> uint8 NHWC (what the server takes)."""
    pixels = np.ascontiguousarray(np.clip(np.rint(images), 0, 255).astype(np.uint8)
                                  .transpose(0, 2, 3, 1))
    if not np.array_equal(pixels.transpose(0, 3, 1, 2), images):
        raise DataError("The test images are not whole pixels 0-255, which the served model "
                        "takes: please report this as a bug.")
    return pixels


def _size_metadata(result) -> dict:
    """The size report (job.ExportResult) as the MLmodel's metadata."""
    layout = result.layout
    qonnx = {"qonnx_file_bytes": result.qonnx_bytes} if result.qonnx is not None else {}
    return {"size_report": {
        **{k.removeprefix("model/"): v for k, v in result.summary.metrics().items()},
        "bwn_file_bytes": layout.total, **qonnx,
        "bwn_parts": {"sign_bits": layout.sign_bits, "float32": layout.float32,
                      "header": layout.prefix_and_header, "padding": layout.padding,
                      "checksum": layout.checksum},
        "layers": result.summary.as_dict()["layers"]}}


def _requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "numpy", *packages)]


@contextmanager
def model_logging():
    """How binwrn logs a model: without the uv project MLflow would copy from the working
    directory into it (binwrn's uv.lock and pyproject.toml list torch, which the served model
    does not need), and without MLflow's INFO lines and warnings about the machine it runs on
    (pip's version, GPU providers): `register` checks the logged model itself."""
    import logging

    logger = logging.getLogger("mlflow")
    level = logger.level
    with restored_environ(UV_SWITCHES):
        os.environ.update(dict.fromkeys(UV_SWITCHES, "false"))
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


UV_SWITCHES = ("MLFLOW_UV_AUTO_DETECT", "MLFLOW_LOG_UV_FILES")


@contextmanager
def _tracking(uri: str):
    """Model logging and the SQL registry read MLflow's global tracking URI: set it for the
    block (and log models as `model_logging` says). Afterwards the globals are as they were,
    unset ones included: `set_registry_uri(get_registry_uri())` would pin the default store
    (./mlflow.db) for every later `MlflowClient(uri)` of this process, whatever its `uri`."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    # Both setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI for subprocesses.
    before = tracking._tracking_uri, registry._registry_uri
    with restored_environ(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            with model_logging():
                yield
        finally:
            tracking._tracking_uri, registry._registry_uri = before


def _final_step(client, run_id: str) -> int:
    """The step of the run's final test: the model is linked to the metrics logged there."""
    history = (client.get_metric_history(run_id, "test_final/acc")
               or client.get_metric_history(run_id, "test/acc"))  # a run from before test_final
    return max((m.step for m in history), default=0)


def _version_tags(run, result, served: dict[str, int]) -> dict[str, str]:
    """The version's facts; binwrn.served_bytes counts what serving loads (the QONNX file
    travels in the model's folder but is not read by `predict`)."""
    from binwrn.tracking.metrics import final_value

    metrics, tags = run.data.metrics, run.data.tags
    found = {"binwrn.run_id": run.info.run_id,
             "binwrn.config_hash": tags.get("binwrn.config_hash"),
             "binwrn.packed_bytes": result.summary.packed_bytes,
             "binwrn.bwn_file_bytes": result.layout.total,
             "binwrn.served_bytes": sum(v for k, v in served.items() if k != "qonnx"),
             "binwrn.qonnx_file_bytes": result.qonnx_bytes if result.qonnx else None,
             "binwrn.test_error_pct": final_value(metrics, "error_pct"),  # the run's result
             "binwrn.test_acc": final_value(metrics, "acc")}
    return {k: str(v) for k, v in found.items() if v is not None}


QONNX_ARTIFACT = "qonnx"  # the pyfunc's artifact key of the QONNX file


def served_bytes(client, model_id: str, qonnx_name: str | None = None) -> dict[str, int]:
    """The logged model's files by part: the .bwn, the pyfunc wrapper (MLmodel, the code file,
    binwrn's torch-free modules, environment files), the input example, and the QONNX file
    named `qonnx_name` where there is one."""
    parts = {"bwn": 0, "wrapper": 0, "input_example": 0}
    if qonnx_name:
        parts["qonnx"] = 0

    def walk(path: str | None) -> None:
        for info in client.list_logged_model_artifacts(model_id, path):
            if info.is_dir:
                walk(info.path)
                continue
            name = Path(info.path).name
            part = ("qonnx" if qonnx_name and name == qonnx_name else
                    "bwn" if name.endswith(".bwn") else
                    "input_example" if "input_example" in name else "wrapper")
            parts[part] += info.file_size or 0

    walk(None)
    return parts


def register(source, result, bwn: Path, name: str, alias: str | None,
             onnx_path: Path | None, qonnx_path: Path | None = None) -> Registered:
    """Log the pyfunc (with the QONNX file as an artifact) and the ONNX model on `source`'s
    run, check what was stored, register it as a version of `name` with tags and `alias`;
    undo everything on failure."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from binwrn.export.job import check_images as test_images
    from binwrn.tracking.store import open_client

    images = test_images(source.config, EXAMPLE_IMAGES)
    pixels = as_pixels(images)
    classes = int(source.config.data.num_classes)
    client = open_client(source.tracking_uri)
    run = client.get_run(source.run_id)
    step = _final_step(client, source.run_id)
    created: list = []  # (kind, ...) in creation order, undone in reverse
    try:
        with _tracking(source.tracking_uri), tempfile.TemporaryDirectory() as tmp:
            arguments = pyfunc_arguments(bwn, pixels, result, Path(tmp))
            if qonnx_path is not None:
                arguments["artifacts"][QONNX_ARTIFACT] = str(qonnx_path)
            model_id = _log_model(client, run, step, created, SERVED_MODEL, flavor=mlflow.pyfunc,
                                  **arguments)
            _check_served(f"models:/{model_id}", bwn, images, pixels)
            onnx_uri = None
            if onnx_path is not None:
                onnx_uri = "models:/" + _log_model(client, run, step, created, ONNX_MODEL,
                                                   **_onnx_model(onnx_path, images, classes))
            qonnx_name = qonnx_path.name if qonnx_path is not None else None
            served = served_bytes(client, model_id, qonnx_name)
            tags = _version_tags(run, result, served)
            if onnx_uri:
                tags["binwrn.onnx_model_uri"] = onnx_uri
            qonnx_file = None
            if qonnx_name:
                qonnx_file = f"artifacts/{qonnx_name}"
                _check_logged_file(client, model_id, qonnx_file, qonnx_path)
                tags["binwrn.qonnx_file"] = qonnx_file
            if not _registered_model_exists(client, name):
                client.create_registered_model(name, description=DESCRIPTION)
                created.append(("registered", name))
            # Inside _tracking: the SQL registry looks the logged model up in the global store.
            version = client.create_model_version(name, f"models:/{model_id}",
                                                  run_id=run.info.run_id, tags=tags,
                                                  model_id=model_id).version
            created.append(("version", name, version))
            if alias:
                client.set_registered_model_alias(name, alias, version)
    except (MlflowException, OSError) as err:
        _undo(client, created)
        raise ConfigError(f"Registering {name!r} failed ({_first_line(err)}), so nothing was "
                          "registered: fix the cause and run binwrn-export again.") from None
    except BaseException:
        _undo(client, created)
        raise
    return Registered(name, str(version), alias, f"models:/{model_id}", onnx_uri, qonnx_file,
                      served)


DESCRIPTION = ("A 1-bit WRN packed by binwrn-export (.bwn, one bit per weight), served by "
               "ONNX Runtime on the graph built from it when the model loads: no torch needed.")


def _check_logged_file(client, model_id: str, path: str, local: Path) -> None:
    """The model's file `path` holds exactly the bytes of `local`."""
    import mlflow.artifacts

    uri = client.get_logged_model(model_id).artifact_location.rstrip("/") + "/" + path
    with tempfile.TemporaryDirectory() as tmp:
        stored = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        if stored.read_bytes() != local.read_bytes():
            raise DataError(f"The logged model's {path} differs from {local}, so nothing was "
                            "registered: please report this as a bug.")


def pyfunc_arguments(bwn: Path, pixels: np.ndarray, result, folder: Path) -> dict:
    """What `mlflow.pyfunc.log_model` / `save_model` take for the served model of `bwn`:
    example `pixels` (uint8 NHWC), the size report of `result` (job.ExportResult), binwrn's
    torch-free code copied under `folder`."""
    from binwrn.export.format import read_packed

    classes = int(read_packed(bwn).header["model"]["num_classes"])
    return {"python_model": str(Path(__file__).with_name("served_model.py")),
            "artifacts": {"bwn": str(bwn)}, "code_paths": [str(served_code(folder))],
            "signature": signature(pixels.shape[1:], classes), "input_example": pixels,
            "pip_requirements": _requirements("onnx", "onnxruntime"),
            "metadata": _size_metadata(result)}


def _log_model(client, run, step: int, created: list, name: str, **kwargs) -> str:
    """A logged model `name` in the run's experiment, linked to the run and to the metrics
    of its final test (at `step`), with its files from `Model.log(**kwargs)`; returns its id."""
    from mlflow.models import Model

    model_id = client.create_logged_model(run.info.experiment_id, name, run.info.run_id,
                                          params=run.data.params).model_id
    created.append(("logged", model_id))
    Model.log(None, name=name, model_id=model_id, run_id=run.info.run_id, step=step, **kwargs)
    return model_id


def _check_served(uri: str, bwn: Path, images: np.ndarray, pixels: np.ndarray) -> None:
    """The stored model, loaded back as a server would, gives the NumPy runtime's logits on
    the example images up to float round-off (job.ROUND_OFF: ONNX Runtime sums in another
    order)."""
    import mlflow

    from binwrn.export.format import read_packed
    from binwrn.export.job import check_logits
    from binwrn.export.numpy_runtime import NumpyWRN

    got = mlflow.pyfunc.load_model(uri).predict(pixels)["logits"]
    try:
        check_logits(NumpyWRN(read_packed(bwn)).logits(images), got,
                     f"logged model {uri}'s (against the NumPy runtime's)")
    except DataError as err:
        raise DataError(str(err).replace("nothing was written", "nothing was registered")) \
            from None


def _onnx_model(path: Path, images: np.ndarray, classes: int) -> dict:
    """Model.log arguments of the ONNX file with MLflow's onnx flavor: float32 NCHW raw
    pixels in (docs/packed-format.md section 8), logits out."""
    import mlflow.onnx
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    sig = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *images.shape[1:]), INPUT)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes), "logits")]))
    return {"flavor": mlflow.onnx, "onnx_model": onnx.load(str(path)), "signature": sig,
            "input_example": {INPUT: images.astype(np.float32)},
            "onnx_execution_providers": ["CPUExecutionProvider"],
            "pip_requirements": _requirements("onnx", "onnxruntime")}


def _registered_model_exists(client, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def _undo(client, created: list) -> None:
    """Delete what `register` created, newest first; a failure here must not hide the cause."""
    for kind, *args in reversed(created):
        try:
            if kind == "version":
                client.delete_model_version(*args)
            elif kind == "registered":
                client.delete_registered_model(*args)
            else:
                client.delete_logged_model(*args)
        except Exception:  # noqa: BLE001 - best effort; the original error is raised
            pass
