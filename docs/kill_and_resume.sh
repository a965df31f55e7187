#!/usr/bin/env bash
# Kill-and-resume on real CIFAR-10: the same command twice, the first killed with SIGKILL
# during epoch 4, against an uninterrupted run of the same seed in another store.
set -u
ARGS="dataset=cifar10 data.root=$1 data.train_limit=5000 data.test_limit=2000 model.depth=8 model.width=1 trainer.max_epochs=6 deterministic=true seed=1 tracking.system_metrics_interval=0"
mkdir -p killed whole
(cd killed && binwrn-run $ARGS hydra.run.dir=first > first.log 2>&1) &
while [ ! -f killed/first/checkpoints/last.ckpt ] || ! ls killed/first/checkpoints/ | grep -q cycle-end; do sleep 0.2; done
sleep 4; pkill -KILL -f "hydra.run.dir=first"; wait
(cd killed && binwrn-run $ARGS > second.log 2>&1)
(cd whole && binwrn-run $ARGS > whole.log 2>&1)
