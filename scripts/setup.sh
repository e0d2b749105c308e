#!/usr/bin/env bash
# Create .venv and install ltzoo into it. torch/torchvision are installed first and pinned here (not in
# pyproject) so each machine can pick its build; override with TORCH_VERSION / TORCHVISION_VERSION.
# Usage: bash scripts/setup.sh [EXTRAS]      (default extras: train,hub; tests use: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,hub}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "ltzoo installed in .venv (extras: ${extras})"
