#!/usr/bin/env bash
# The main job: set up, then evaluate a released zoo model on its benchmark, offline, through a local Hub
# serving releases/ and the shared data. Before any release exists: list the zoo and round-trip a model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train,hub
export HF_HUB_DISABLE_TELEMETRY=1  # downloads go to the standard Hugging Face cache, reused by later commands
model="${1:-}"
if [ -z "$model" ]; then
    model="$(.venv/bin/ltzoo list --pretrained 'resnet32_*cifar10_lt*' | head -n 1)"
fi
mkdir -p outputs
if [ -n "$model" ]; then
    .venv/bin/ltzoo validate "$model" --pretrained --local-hub releases --json "outputs/${model}.json" \
        --plot "outputs/${model}.png"
else
    echo "No released weights yet. The zoo:"
    .venv/bin/ltzoo list
    .venv/bin/python scripts/hub_roundtrip.py
fi
