#!/usr/bin/env bash
# Kill -9 at five moments, one trial each (docs/reliability.md "Crash semantics"): every trial
# runs the same binwrn-run command twice in its own folder and store, the first killed by the
# test hook BINWRN_TEST_KILL_AT at that moment; then an uninterrupted run, and a comparison of
# every metric's history (time/* excepted) and of the runs' statuses. Digits, WRN-8-1, 3 epochs.
set -u
ARGS="experiment=smoke dataset=digits trainer.max_epochs=3 deterministic=true seed=3 tracking.system_metrics_interval=0"
MOMENTS="store mid_epoch:1 mid_epoch:2 checkpoint_write:1 bn_recompute final_test"
for m in $MOMENTS; do
  d="trial-${m/:/-}"; mkdir -p "$d"
  (cd "$d" && BINWRN_TEST_KILL_AT=$m binwrn-run $ARGS > first.log 2>&1; echo "$m: first exit $?"
   binwrn-run $ARGS > second.log 2>&1; echo "$m: second exit $?")
done
mkdir -p whole && (cd whole && binwrn-run $ARGS > whole.log 2>&1; echo "whole: exit $?")
python - $MOMENTS <<'EOF'
import sys
from mlflow import MlflowClient

def runs(folder):
    c = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    out = []
    for r in c.search_runs([c.get_experiment_by_name("binwrn").experiment_id]):
        h = {k: [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, k)]
             for k in sorted(r.data.metrics) if not k.startswith("time/")}
        out.append((r.info.status, h))
    return out

(_, reference), = runs("whole")
final = {k: v[-1][1] for k, v in reference.items() if k in ("test/acc", "test/loss")}
print(f"uninterrupted: final test/acc {final['test/acc']:.4f}, test/loss {final['test/loss']:.4f}")
for m in sys.argv[1:]:
    found = runs(f"trial-{m.replace(':', '-')}")
    finished = [h for s, h in found if s == "FINISHED"]
    print(f"{m:20s} statuses {sorted(s for s, _ in found)}; "
          f"every metric equal: {len(finished) == 1 and finished[0] == reference}")
EOF
