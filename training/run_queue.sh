#!/usr/bin/env bash
# Train configs one after another, each resuming from its last checkpoint (safe to re-run after a kill).
# Usage: nohup training/run_queue.sh training/configs/A.yaml "training/configs/B.yaml k=v ..." > queue.log 2>&1 &
# An item may carry overrides after its config, in one quoted argument (an ablation's run_dir, release_dir and
# change). LTZOO_THREADS sets the CPU threads per run (default: all cores): `accelerate launch` on its own gives a
# CPU process one thread, and two queues with LTZOO_THREADS=1 use two cores better than one queue with two threads.
set -u
cd "$(dirname "$0")/.."
threads="${LTZOO_THREADS:-$(nproc)}"
for item in "$@"; do
    read -r -a words <<< "$item"
    echo "=== $(date -u +%FT%TZ) $item"
    accelerate launch --num_processes 1 --num_machines 1 --dynamo_backend no \
        --num_cpu_threads_per_process "$threads" \
        training/train.py --config "${words[0]}" "${words[@]:1}" --resume auto || echo "=== FAILED $item"
done
echo "=== $(date -u +%FT%TZ) queue done"
