"""The measurement scripts the README quotes run as written, at a size that takes seconds (the figures need the
full sizes and an idle machine; these runs only prove the commands work and print what the README reads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_inference_overhead_compares_the_ltzoo_model_with_bare_timm_on_identical_outputs():
    out = run("inference_overhead.py", "--threads", "1", "--repeats", "2", "--warmup", "1", "--batch-size", "1",
              "--img-size", "64", "--max-overhead", "10")
    assert "outputs identical" in out and "median paired ratio ltzoo/timm" in out


def test_method_throughput_reports_images_per_second_and_the_data_pipelines_share():
    out = run("method_throughput.py", "--methods", "ce", "--steps", "1", "--warmup", "1", "--rounds", "1")
    assert "images/s" in out and "main batch" in out


def test_loader_throughput_measures_both_decoders():
    out = run("loader_throughput.py", "--images", "8", "--size", "64", "--workers", "0", "--epochs", "1")
    assert "torchvision decode" in out and "PIL decode" in out
