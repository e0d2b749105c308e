#!/usr/bin/env bash
# Train configs one after another, each resuming from its last checkpoint (safe to re-run after a kill).
# Usage: nohup training/run_queue.sh training/configs/A.yaml training/configs/B.yaml > ~/.cache/ltzoo/queue.log 2>&1 &
# LTZOO_THREADS sets the CPU threads per run (default: all cores). `accelerate launch` on its own gives a CPU
# process one thread; two queues with LTZOO_THREADS=1 each use two cores better than one queue with two threads.
set -u
cd "$(dirname "$0")/.."
threads="${LTZOO_THREADS:-$(nproc)}"
for config in "$@"; do
    echo "=== $(date -u +%FT%TZ) $config"
    accelerate launch --num_processes 1 --num_machines 1 --dynamo_backend no \
        --num_cpu_threads_per_process "$threads" \
        training/train.py --config "$config" --resume auto || echo "=== FAILED $config"
done
echo "=== $(date -u +%FT%TZ) queue done"
