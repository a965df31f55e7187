#!/usr/bin/env bash
# Issue 18's acceptance on real CIFAR-10 (docs/deploying.md): train the 1-bit
# WRN-10-1 for one epoch, register it, serve it with `mlflow models serve` (no torch),
# send all 10,000 test images over HTTP and compare the served accuracy with the run's final
# test (test_final/acc) and with binwrn-eval --runtime numpy.
#
#   bash docs/served_accuracy.sh CIFAR10_PNG_ROOT [WORK_DIR]
#
# CIFAR10_PNG_ROOT: the unpacked ../shared/datasets/cifar10-png.tar (train/ and test/).
set -euo pipefail
root=$(realpath "$1")
work=$(realpath -m "${2:-served-accuracy}")
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work" && cd "$work"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
bin="$repo/.venv/bin"
export PATH="$bin:$PATH"  # mlflow models serve starts uvicorn from PATH
port=$("$bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")

"$bin/binwrn-run" dataset=cifar10 data.root="$root" model.depth=10 model.width=1 \
  trainer.max_epochs=1 "hydra.run.dir=$work/outputs/run" > train.log 2>&1
run_id=$("$bin/python" -c "import json; print(json.load(open('outputs/run/outcome.json'))['run_id'])")
"$bin/binwrn-export" "$run_id" --out wrn10-1.bwn --register cifar10-wrn10-1 --alias champion \
  > export.log 2>&1
"$bin/binwrn-eval" wrn10-1.bwn data.root="$root" --runtime numpy --json eval_numpy.json \
  > eval.log 2>&1

"$bin/mlflow" models serve -m models:/cifar10-wrn10-1@champion --env-manager local \
  --host 127.0.0.1 --port "$port" > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$port/ping" > /dev/null && break
  sleep 1
done
"$bin/python" - "$port" "$root" "$run_id" <<'EOF'
import json, os, sys, time, urllib.request

import numpy as np
from binwrn.data import load_splits
from binwrn.tracking.metrics import final_value
from binwrn.tracking.store import open_client

port, root, run_id = sys.argv[1:]
_, test = load_splits("cifar10", root, 10)
started, predicted = time.perf_counter(), []
for i in range(0, len(test), 500):
    body = json.dumps({"inputs": test.images[i:i + 500].tolist()}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        logits = np.array(json.load(answer)["predictions"]["logits"], np.float32)
    predicted.append(logits.argmax(axis=1))
predicted = np.concatenate(predicted)
correct = int((predicted == test.labels).sum())
metrics = open_client(os.environ["MLFLOW_TRACKING_URI"]).get_run(run_id).data.metrics
numpy_eval = json.load(open("eval_numpy.json"))
print(json.dumps({"run_id": run_id, "images": len(test), "served_correct": correct,
                  "served_acc": correct / len(test),
                  "run_test_final_acc": final_value(metrics, "acc"),
                  "binwrn_eval_numpy_acc": numpy_eval["acc"],
                  "serve_wall_s": round(time.perf_counter() - started, 1)}, indent=1))
EOF
