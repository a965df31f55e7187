#!/usr/bin/env bash
# Issue 31's acceptance on real CIFAR-10 (docs/packed-format.md section 10, docs/deploying.md): the 1-bit WRN-10-1 trained for one epoch, exported with --qonnx (and --onnx,
# registered), qonnx's executor's accuracy on all 10,000 test images beside the run's final
# test (test_final/acc) and binwrn-eval --runtime numpy; then the served model's speed
# (docs/served_speed.py).
#
#   bash docs/qonnx_accuracy.sh CIFAR10_PNG_ROOT [WORK_DIR]
#
# CIFAR10_PNG_ROOT: the unpacked ../shared/datasets/cifar10-png.tar (train/ and test/). A
# WORK_DIR that already holds the trained run (outputs/run/outcome.json and mlflow.db, as this
# script or docs/served_accuracy.sh leave them) is reused instead of training again.
set -euo pipefail
root=$(realpath "$1")
work=$(realpath -m "${2:-qonnx-accuracy}")
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work" && cd "$work"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
bin="$repo/.venv/bin"
export PATH="$bin:$PATH"  # mlflow models serve starts uvicorn from PATH

if [ ! -f outputs/run/outcome.json ]; then
  "$bin/binwrn-run" dataset=cifar10 data.root="$root" model.depth=10 model.width=1 \
    trainer.max_epochs=1 "hydra.run.dir=$work/outputs/run" > train.log 2>&1
fi
run_id=$("$bin/python" -c "import json; print(json.load(open('outputs/run/outcome.json'))['run_id'])")
"$bin/binwrn-export" "$run_id" --qonnx > export_qonnx.log 2>&1
"$bin/binwrn-export" "$run_id" --out wrn10-1.bwn --onnx --qonnx --register cifar10-wrn10-1 \
  --alias champion > export_registered.log 2>&1
"$bin/binwrn-eval" "$run_id.qonnx.onnx" data.root="$root" --runtime qonnx --json eval_qonnx.json \
  > eval_qonnx.log 2>&1
"$bin/binwrn-eval" wrn10-1.bwn data.root="$root" --runtime numpy --json eval_numpy.json \
  > eval_numpy.log 2>&1
"$bin/python" - "$run_id" <<'EOF'
import json, os, sys

from binwrn.tracking.metrics import final_value
from binwrn.tracking.store import open_client

run_id = sys.argv[1]
metrics = open_client(os.environ["MLFLOW_TRACKING_URI"]).get_run(run_id).data.metrics
qonnx, numpy_eval = json.load(open("eval_qonnx.json")), json.load(open("eval_numpy.json"))
print(json.dumps({"run_id": run_id, "images": qonnx["images"],
                  "qonnx_executor_correct": qonnx["correct"], "qonnx_executor_acc": qonnx["acc"],
                  "run_test_final_acc": final_value(metrics, "acc"),
                  "binwrn_eval_numpy_acc": numpy_eval["acc"],
                  "qonnx_file_bytes": os.path.getsize(f"{run_id}.qonnx.onnx"),
                  "onnx_file_bytes": os.path.getsize("wrn10-1.onnx"),
                  "bwn_file_bytes": os.path.getsize("wrn10-1.bwn")}, indent=1))
EOF
"$bin/python" "$repo/docs/served_speed.py" models:/cifar10-wrn10-1@champion wrn10-1.onnx \
  wrn10-1.bwn "$root"
