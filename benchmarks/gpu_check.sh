#!/usr/bin/env bash
# GPU readiness check, one command, under 8 minutes on one H100-class GPU:
#   1. one epoch of each CIFAR-10-LT recipe in bf16 (benchmarks/gpu_check.py): images/s, finite and decreasing loss,
#      the projected time of the recipe's full training;
#   2. bitwise resume on the device: training/train.py (LDAM-DRW, DRW switching on inside the run) for 2 epochs,
#      and again from its first epoch's checkpoint; the final weights' sha256 must be equal, else the largest weight
#      difference is printed (CUDA kernels need not be deterministic);
#   3. with two or more GPUs: the same recipe under `accelerate launch --multi_gpu --num_processes 2`; both ranks must
#      end with the same weights.
# Usage: [GPU_CHECK_COMPILE=1] bash benchmarks/gpu_check.sh [--dry-run]
#   GPU_CHECK_COMPILE=1: every step trains through torch.compile (train.py's `compile: true`).
#   --dry-run: the same steps on the CPU with two batches of 32 each: per recipe (step 1), per epoch of the resume
#   check (CE on 64 images: LDAM needs every class in the subset) and of the two-process run (two gloo processes). It is part of the default test suite (tests/test_gpu_check.py).
# Everything goes to a temporary folder (or $GPU_CHECK_OUT); the log is $GPU_CHECK_OUT/gpu_check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PY="${PYTHON:-python}"
COMPILE=()
if [[ ${GPU_CHECK_COMPILE:-0} == 1 ]]; then COMPILE=(--compile); fi
OUT="${GPU_CHECK_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONWARNINGS=ignore
start=$SECONDS
echo "gpu_check $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') out=$OUT"

if [[ $DRY == 1 ]]; then
  if ! TINY=$("$PY" benchmarks/gpu_check.py --tiny-cifar-root "$OUT/cifar10"); then
    echo "gpu_check --dry-run: skipped, the CIFAR-10 archives are not here (set LTZOO_DATA)"; exit 0
  fi
  "$PY" benchmarks/gpu_check.py --dry-run --json "$OUT/methods.json" "${COMPILE[@]}"
  # a 200-image test split keeps the runs' final evaluations short
  RUN=(data.subset=64 data.batch_size=32 precision=fp32
       data.root="$TINY")
  RESUME=(--config training/configs/resnet32_ce_cifar10_lt.if100.yaml)
  GPUS=2  # two gloo processes stand in for two GPUs
  export ACCELERATE_USE_CPU=1
else
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" benchmarks/gpu_check.py --json "$OUT/methods.json" "${COMPILE[@]}"
  RUN=(precision=bf16)
  RESUME=(--config training/configs/resnet32_ldam_drw_cifar10_lt.if100.yaml method.drw_start=1)
  GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
fi
echo "step 1 done at $((SECONDS - start)) s"
if [[ ${#COMPILE[@]} -gt 0 ]]; then RUN+=(compile=true); fi

# step 2: bitwise resume
ARGS=("${RESUME[@]}" epochs=2 --no-export "${RUN[@]}" release_dir="$OUT/releases")
"$PY" training/train.py "${ARGS[@]}" run_dir="$OUT/straight" > "$OUT/straight.log"
cp -r "$OUT/straight" "$OUT/resumed"
rm -rf "$OUT/resumed/checkpoints/epoch_0001" "$OUT/resumed/train.lock"
"$PY" training/train.py "${ARGS[@]}" run_dir="$OUT/resumed" --resume auto > "$OUT/resumed.log"
grep -q "resumed from" "$OUT/resumed.log"
"$PY" - "$OUT/straight/checkpoints/epoch_0001" "$OUT/resumed/checkpoints/epoch_0001" <<'EOF'
import sys
from safetensors.torch import load_file
a, b = (load_file(f"{path}/model.safetensors") for path in sys.argv[1:3])
worst = max((x.float() - b[k].float()).abs().max().item() for k, x in a.items())
equal = all(x.equal(b[k]) for k, x in a.items())
print(f"resume: final weights {'bitwise equal' if equal else f'DIFFER, largest difference {worst:.3e}'}")
EOF
echo "step 2 done at $((SECONDS - start)) s"

# step 3: two processes
if [[ $GPUS -ge 2 ]]; then
  "$PY" -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --dynamo_backend no \
    training/train.py --config training/configs/resnet32_ce_cifar10_lt.if100.yaml epochs=1 \
    --no-export "${RUN[@]}" run_dir="$OUT/two" release_dir="$OUT/releases" > "$OUT/two.log"
  digests=$(grep -o "final weights sha256 [0-9a-f]*" "$OUT/two.log" | sort -u | wc -l)
  ranks=$(grep -c "final weights sha256" "$OUT/two.log")
  [[ $ranks == 2 && $digests == 1 ]] || { echo "two processes: ranks ended with different weights"; exit 1; }
  echo "two processes: both ranks end with the same weights ($(grep -o 'global batch.*' "$OUT/two.log" | head -1))"
else
  echo "two processes: skipped (one GPU)"
fi
echo "gpu_check done in $((SECONDS - start)) s"
