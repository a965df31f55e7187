"""binwrn-export --register: the packed model as an MLflow Model, registered, loaded without
torch and served by the real `mlflow models serve` through ONNX Runtime on the graph built
from the `.bwn` in memory; what it predicts is what `binwrn-eval --runtime numpy` computes, up
to float round-off, and `predict` is about as fast as ONNX Runtime on the exported ONNX file.
The QONNX file travels on the version beside the `.bwn`. Bad input gets one sentence and
registers nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers_registry import FINAL_STEP, finished_run
from helpers_server import free_port, stop_group
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from PIL import Image
from test_export_cli import _call, _one_error_line

from binwrn import cli
from binwrn.data import load_splits
from binwrn.export.format import read_packed
from binwrn.export.mlflow_model import served_code
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.served import check_images

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
NAME = "digits-wrn8-1bit"
SPEED_RATIO = 1.5  # predict on 1,000 images / ONNX Runtime on the exported file, at most
SERVE_START_S = 300  # `mlflow models serve` imports MLflow twice: slow on a loaded machine
NO_TORCH = """
import importlib.abc, json, sys
import numpy as np

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is not in the serving environment")

sys.meta_path.insert(0, NoTorch())
import mlflow.pyfunc

model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(np.load(sys.argv[2]))
np.save(sys.argv[3], out["logits"])
import binwrn.export.served as served
print(json.dumps({"torch": "torch" in sys.modules, "served_from": served.__file__,
                  "binwrn": sorted(m for m in sys.modules if m.startswith("binwrn"))}))
"""


def _tool(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, **(env or {})}
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env=env)


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/invocations", json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@contextmanager
def mlflow_serve(model_uri: str, tracking_uri: str, log: Path):
    """`mlflow models serve` on a free loopback port until the block ends, however it ends."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its uvicorn
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + SERVE_START_S
        while True:
            assert server.poll() is None, f"server exited: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(url + "/ping", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer: {log.read_text()[-3000:]}"
            time.sleep(1)
        yield url
    finally:
        stop_group(server)  # the CLI and its uvicorn child


@pytest.mark.slow
def test_registered_model_is_served_without_torch_and_predicts_what_binwrn_eval_does(
        tmp_path: Path, fresh_store: Path):
    run_id, uri = finished_run(tmp_path, fresh_store), f"sqlite:///{fresh_store}"
    # From the checkout, a uv project, whose uv.lock (torch and all) must stay out of the model.
    exported = _tool(REPO, "binwrn-export", run_id, "--tracking-uri", uri, "--out",
                     str(tmp_path / "wrn.bwn"), "--register", NAME, "--alias", "champion",
                     "--onnx", "--qonnx")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"registered {NAME} version 1 (alias champion)" in exported.stdout
    evaluated = _tool(tmp_path, "binwrn-eval", "wrn.bwn", "--runtime", "numpy", "--json",
                      "eval.json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_acc = json.loads((tmp_path / "eval.json").read_text())["acc"]
    _, test = load_splits("digits", None, 10, test_limit=200)  # the run's test set
    expected = NumpyWRN(read_packed(tmp_path / "wrn.bwn")).logits(test.model_inputs())
    assert np.mean(expected.argmax(axis=1) == test.labels) == eval_acc

    # The registry: a version of the model logged from the run, with its tags and alias.
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(NAME, "champion")
    assert (str(version.version), version.run_id) == ("1", run_id)
    bwn_bytes = (tmp_path / "wrn.bwn").stat().st_size
    tags = version.tags
    assert {k: tags[k] for k in ("binwrn.run_id", "binwrn.config_hash", "binwrn.packed_bytes",
                                 "binwrn.bwn_file_bytes", "binwrn.test_error_pct")} == {
        "binwrn.run_id": run_id, "binwrn.config_hash": "0123abcd",
        "binwrn.packed_bytes": "9350", "binwrn.bwn_file_bytes": str(bwn_bytes),
        "binwrn.test_error_pct": "75.0"}
    model_id = version.source.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run_id and logged.status == LoggedModelStatus.READY
    run = client.get_run(run_id)
    assert model_id in {m.model_id for m in run.outputs.model_outputs}
    assert logged.experiment_id == run.info.experiment_id
    assert {m.key: m.value for m in logged.metrics} == {"test/acc": 0.2, "test/error_pct": 80.0,
                                                            "test_final/acc": 0.25,
                                                            "test_final/error_pct": 75.0}
    assert {m.step for m in logged.metrics} == {FINAL_STEP}

    # The model folder: signature, size report, real test images, no torch required.
    folder = _local(client.get_model_version_download_uri(NAME, "1"))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert json.loads(mlmodel["signature"]["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 32, 32, 3]},
         "name": "images"}]
    assert [o["name"] for o in json.loads(mlmodel["signature"]["outputs"])] == [
        "logits", "probabilities"]
    assert mlmodel["metadata"]["size_report"]["bwn_file_bytes"] == bwn_bytes
    assert (folder / "artifacts" / "wrn.bwn").read_bytes() == (tmp_path / "wrn.bwn").read_bytes()
    requirements = (folder / "requirements.txt").read_text().split()
    assert not {"uv.lock", "pyproject.toml"} & {p.name for p in folder.iterdir()}
    assert sorted(r.split("==")[0] for r in requirements) == ["mlflow", "numpy", "onnx",
                                                              "onnxruntime"]
    # The QONNX file, on the version beside the .bwn, named in a tag.
    assert tags["binwrn.qonnx_file"] == "artifacts/wrn.qonnx.onnx"
    qonnx_bytes = (tmp_path / "wrn.qonnx.onnx").read_bytes()
    assert (folder / tags["binwrn.qonnx_file"]).read_bytes() == qonnx_bytes
    assert tags["binwrn.qonnx_file_bytes"] == str(len(qonnx_bytes))
    assert mlmodel["metadata"]["size_report"]["qonnx_file_bytes"] == len(qonnx_bytes)
    assert f"QONNX file logged on the version beside the .bwn: artifacts/wrn.qonnx.onnx " \
           f"({len(qonnx_bytes):,} bytes" in " ".join(exported.stdout.split())
    example = np.array(json.loads((folder / "input_example.json").read_text()), np.uint8)
    _, everything = load_splits("digits", None, 10)
    assert all((everything.images == image).all(axis=(1, 2, 3)).any() for image in example)
    onnx_model = _local(client.get_logged_model(
        tags["binwrn.onnx_model_uri"].removeprefix("models:/")).artifact_location)
    assert "onnx" in yaml.safe_load((onnx_model / "MLmodel").read_text())["flavors"]

    # Loaded as `mlflow.pyfunc.load_model` with torch unimportable: the model's own code runs.
    np.save(tmp_path / "images.npy", test.images)
    facts = _python(NO_TORCH, tmp_path, uri, f"models:/{NAME}@champion", "images.npy",
                    "out.npy")
    assert facts["torch"] is False and "/code/binwrn/export/served.py" in facts["served_from"]
    assert "binwrn.export.onnx_export" in facts["binwrn"]  # ONNX Runtime serves it
    served = np.load(tmp_path / "out.npy")
    assert_round_off(served, expected)

    # In one process: predict on 1,000 images against ONNX Runtime on the exported ONNX file.
    timed = _python(SPEED, tmp_path, uri, f"models:/{NAME}@champion", "wrn.onnx", "wrn.bwn")
    assert timed["predict_s"] <= SPEED_RATIO * timed["onnxruntime_s"], timed
    assert timed["max_diff_vs_numpy"] <= 1e-4 * timed["max_abs_logit"], timed

    # Served over HTTP by the real `mlflow models serve`.
    with mlflow_serve(f"models:/{NAME}@champion", uri, tmp_path / "serve.log") as url:
        status, answer = _post(url, {"inputs": test.images.tolist()})
        assert status == 200, answer
        logits = np.array(answer["predictions"]["logits"], np.float32)
        assert np.array_equal(logits, served)  # float32 survives JSON exactly
        assert_round_off(logits, expected)
        assert np.mean(logits.argmax(axis=1) == test.labels) == eval_acc
        probabilities = np.array(answer["predictions"]["probabilities"])
        assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
        assert (probabilities.argmax(axis=1) == logits.argmax(axis=1)).all()

        contract = "send uint8 pixels 0-255 (raw, not scaled) in NHWC order, shape (N, 32, 32, 3)"
        scaled = (test.images[:2] / 255.0).tolist()
        nchw = test.images[:2].transpose(0, 3, 1, 2).tolist()
        for payload, sentence in (
                ({"inputs": scaled}, "The images are floating-point numbers, not uint8 pixels"),
                ({"inputs": {"images": nchw}}, "The images have shape (2, 3, 32, 32)")):
            status, answer = _post(url, payload)
            assert status == 400
            assert answer["message"] == f"Invalid input. {sentence}: {contract}."

        # docs/deploying.md's client, as written but for the port, on a real test image.
        Image.fromarray(test.images[3]).save(tmp_path / "image.png")
        client_code = readme_client().replace("http://127.0.0.1:5001", url)
        asked = subprocess.run([sys.executable, "-c", client_code], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
        assert asked.returncode == 0, asked.stderr[-2000:]
        assert asked.stdout.strip() == f"class {expected[3].argmax()}"


SPEED = """
import json, sys, time
import numpy as np
import mlflow.pyfunc
from binwrn.data import load_splits
from binwrn.export.format import read_packed
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.onnx_export import OnnxWRN

_, test = load_splits("digits", None, 10)
pixels = np.resize(test.images, (1000, *test.images.shape[1:]))  # 1,000 real test images
images = pixels.transpose(0, 3, 1, 2).astype(np.float32)
model = mlflow.pyfunc.load_model(sys.argv[1])
session = OnnxWRN(open(sys.argv[2], "rb").read())
times = {"predict_s": [], "onnxruntime_s": []}
for _ in range(5):  # interleaved, so both see the same load
    for key, call in (("predict_s", lambda: model.predict(pixels)["logits"]),
                      ("onnxruntime_s", lambda: session.logits(images, 1000))):
        start = time.perf_counter()
        logits = call()
        times[key].append(time.perf_counter() - start)
numpy_logits = NumpyWRN(read_packed(sys.argv[3])).logits(images)
served = model.predict(pixels)["logits"]
print(json.dumps({**{k: float(np.median(v)) for k, v in times.items()},
                  "max_diff_vs_numpy": float(np.abs(served - numpy_logits).max()),
                  "max_abs_logit": max(1.0, float(np.abs(numpy_logits).max()))}))
"""


def _python(script: str, cwd: Path, uri: str, *args: str) -> dict:
    """The JSON object that `script` prints last, run in a fresh Python on store `uri`."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_round_off(got: np.ndarray, expected: np.ndarray) -> None:
    """The NumPy runtime's logits up to float round-off (job.ROUND_OFF), the same classes."""
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def readme_client() -> str:
    """docs/deploying.md's Python client of the served model."""
    section = (REPO / "docs" / "deploying.md").read_text().split("# Deploying a 1-bit model", 1)[1]
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", section.split("\n## ")[0],
                                             flags=re.S) if "/invocations" in block]
    return code


def _local(artifact_uri: str) -> Path:
    """The folder of a `file://` artifact location (the test store keeps them on disk)."""
    assert artifact_uri.startswith("file://"), artifact_uri
    return Path(urllib.parse.urlparse(artifact_uri).path)


def test_check_images_names_the_problem_in_one_sentence():
    shape = (32, 32, 3)
    good = np.zeros((2, *shape), np.uint8)
    assert check_images(good, shape) is None
    assert "floating-point numbers" in check_images(good.astype(np.float32), shape)
    assert "shape (2, 3, 32, 32)" in check_images(good.transpose(0, 3, 1, 2), shape)
    assert "range from -1 to 255" in check_images(np.array([-1, 255]).repeat(3072).reshape(
        2, *shape), shape)
    assert "strings" in check_images(np.array([["a"]]), shape)


def test_served_code_is_binwrn_numpy_part_alone(tmp_path: Path):
    """What the model carries instead of an installed binwrn: the modules served.py needs
    and their packages, none of which imports torch (nor qonnx)."""
    package = served_code(tmp_path)
    files = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert {"__init__.py", "errors.py", "export/__init__.py", "export/served.py",
            "export/onnx_export.py", "export/format.py", "export/graph.py"} <= files
    assert not {"cli.py", "export/pack.py", "export/job.py", "config.py",
                "export/qonnx_export.py", "export/numpy_runtime.py"} & files
    for path in package.rglob("*.py"):
        assert "import torch" not in path.read_text(), path
        assert "import qonnx" not in path.read_text(), path
        assert "from qonnx" not in path.read_text(), path


def _empty(uri: str) -> bool:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return not client.search_registered_models() and not client.search_logged_models(
        experiment_ids=experiments)


@pytest.mark.parametrize(("case", "sentence"), [
    ("unknown run", "No run 0123456789abcdef0123456789abcdef in the tracking store"),
    ("full precision", "Nothing to pack: model.bits=32 has no 1-bit weights"),
    ("name", "--register 'wrn/1bit' is refused by the model registry"),
    ("alias", "--alias 'latest' is refused by the model registry"),
    ("checkpoint", "--register logs the model on the run it came from"),
])
def test_bad_input_gets_one_sentence_and_registers_nothing(case, sentence, tmp_path, fresh_store,
                                                           monkeypatch, capsys):
    run_id = finished_run(tmp_path, fresh_store, bits=32 if case == "full precision" else 1)
    uri = f"sqlite:///{fresh_store}"
    source = {"unknown run": "0123456789abcdef0123456789abcdef",
              "checkpoint": str(tmp_path / "final.ckpt")}.get(case, run_id)
    name = "wrn/1bit" if case == "name" else NAME
    alias = "latest" if case == "alias" else "champion"
    args = [source, "--register", name, "--alias", alias, "--tracking-uri", uri]
    if case == "checkpoint":  # finished_run left it beside the store
        args += ["--config", MlflowClient(uri).download_artifacts(run_id, "config/resolved.yaml",
                                                                  str(tmp_path))]
    code, _, err = _call(cli.export, monkeypatch, capsys, *args)
    assert code == 2
    assert sentence in _one_error_line(err, "binwrn-export")
    assert _empty(uri)


@pytest.mark.slow
def test_a_registration_that_fails_half_way_is_undone(tmp_path, fresh_store, monkeypatch,
                                                      capsys):
    run_id = finished_run(tmp_path, fresh_store)
    uri = f"sqlite:///{fresh_store}"
    uri_variables = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # what _tracking() sets
    environment_before = {k: os.environ.get(k) for k in uri_variables}

    def refuse(*args, **kwargs):
        raise MlflowException("the registry is read-only")

    monkeypatch.setattr(MlflowClient, "create_model_version", refuse)
    code, _, err = _call(cli.export, monkeypatch, capsys, run_id, "--register", NAME,
                         "--alias", "champion", "--onnx", "--tracking-uri", uri, "--no-log")
    assert code == 2
    assert (f"Registering '{NAME}' failed (the registry is read-only), so nothing was "
            "registered") in _one_error_line(err, "binwrn-export")
    assert _empty(uri)  # the logged models and the new registered model were deleted
    # MLflow's globals are as they were: a later client on another store reads that store's
    # registry, not ./mlflow.db (restoring get_registry_uri() would have pinned it).
    assert MlflowClient(f"sqlite:///{tmp_path / 'other.db'}")._registry_uri.endswith("other.db")
    assert {k: os.environ.get(k) for k in uri_variables} == environment_before
