#!/usr/bin/env bash
# Train configs one after another, each resuming from its last checkpoint (safe to re-run after a kill).
# Usage: nohup training/run_queue.sh training/configs/A.yaml training/configs/B.yaml > ~/.cache/ltzoo/queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
for config in "$@"; do
    echo "=== $(date -u +%FT%TZ) $config"
    accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
        training/train.py --config "$config" --resume auto || echo "=== FAILED $config"
done
echo "=== $(date -u +%FT%TZ) queue done"
