"""Speed of the served 1-bit model (docs/deploying.md; issue 31): the registered
pyfunc's `predict` beside ONNX Runtime on the exported ONNX file and the NumPy runtime on the
`.bwn`, in one process on the same 1,000 real test images, at batch sizes 1, 100 and 1,000
(images/s, the median of interleaved repeats, so every runtime sees the same machine load);
then the per-request latency of `mlflow models serve` for one image over HTTP.

    MLFLOW_TRACKING_URI=sqlite:///.../mlflow.db uv run python docs/served_speed.py \\
        models:/cifar10-wrn10-1@champion wrn10-1.onnx wrn10-1.bwn CIFAR10_PNG_ROOT

Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from binwrn.data import load_splits
from binwrn.export.format import read_packed
from binwrn.export.numpy_runtime import NumpyWRN
from binwrn.export.onnx_export import OnnxWRN

IMAGES = 1000
REPEATS = 5
REQUESTS = 100  # one-image HTTP requests


def images_per_s(run, pixels: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(pixels), batch):
        run(pixels[i:i + batch])
    return len(pixels) / (time.perf_counter() - start)


def in_process(model_uri: str, onnx_file: str, bwn: str, pixels: np.ndarray) -> dict:
    model = mlflow.pyfunc.load_model(model_uri)
    session = OnnxWRN(Path(onnx_file).read_bytes())
    numpy_net = NumpyWRN(read_packed(bwn))

    def nchw(p: np.ndarray) -> np.ndarray:
        return p.transpose(0, 3, 1, 2).astype(np.float32)

    runners = {"predict": lambda p: model.predict(p)["logits"],
               "onnxruntime_file": lambda p: session.logits(nchw(p), len(p)),
               "numpy_runtime": lambda p: numpy_net.logits(nchw(p), len(p))}
    runners["predict"](pixels[:10])  # warm-up: first calls allocate
    runners["onnxruntime_file"](pixels[:10])
    result = {}
    for batch in (1, 100, IMAGES):
        rates: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(REPEATS):
            for name, run in runners.items():
                if name == "numpy_runtime" and batch == 1:
                    rates[name].append(images_per_s(run, pixels[:100], 1))  # slow: a tenth
                else:
                    rates[name].append(images_per_s(run, pixels, batch))
        result[f"batch_{batch}_images_per_s"] = {k: round(float(np.median(v)), 1)
                                                 for k, v in rates.items()}
    best = result[f"batch_{IMAGES}_images_per_s"]
    result["predict_time_over_onnxruntime_1000"] = round(
        best["onnxruntime_file"] / best["predict"], 3)
    served, reference = runners["predict"](pixels), runners["numpy_runtime"](pixels)
    result["max_abs_diff_predict_vs_numpy"] = float(np.abs(served - reference).max())
    result["max_abs_logit"] = float(np.abs(reference).max())
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_latency(model_uri: str, image: np.ndarray) -> dict:
    """`mlflow models serve` (one worker) on a loopback port; `REQUESTS` requests of one image,
    one after another; milliseconds from sending to the parsed answer."""
    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "/ping", timeout=5):
                    break
            except OSError:
                time.sleep(1)
        body = json.dumps({"inputs": image[None].tolist()}).encode()
        times = []
        for _ in range(REQUESTS + 5):
            request = urllib.request.Request(url + "/invocations", body,
                                             {"Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as answer:
                json.load(answer)
            times.append(1000 * (time.perf_counter() - start))
        times = times[5:]  # the first requests warm the server up
        return {"requests": REQUESTS, "median_ms": round(float(np.median(times)), 2),
                "p90_ms": round(float(np.percentile(times, 90)), 2),
                "min_ms": round(min(times), 2)}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def main() -> None:
    model_uri, onnx_file, bwn, root = sys.argv[1:5]
    _, test = load_splits("cifar10", root, 10)
    pixels = np.ascontiguousarray(test.images[:IMAGES])
    result = {"images": len(pixels), "cpu_cores": os.cpu_count(),
              **in_process(model_uri, onnx_file, bwn, pixels),
              "mlflow_models_serve_one_image": served_latency(model_uri, pixels[0])}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
