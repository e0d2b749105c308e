"""`benchmarks/gpu_check.sh --dry-run`: the GPU check's every step, on the CPU with two batches each.

Where a GPU is lent, `bash benchmarks/gpu_check.sh` runs the same steps at full length in bf16; this keeps the script
working between such occasions. It reads the shared CIFAR-10 archives ($LTZOO_DATA or the shared data folder).
CI (`.ci/run`) runs the script itself after the suite; here it is slow-marked: two steps of every recipe and three
train.py runs take a minute or more on 2 cores (`pytest -m slow tests/test_gpu_check.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltzoo.data.sources import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(path.name.removeprefix("resnet32_").removesuffix("_cifar10_lt.if100.yaml")
                 for path in (ROOT / "training" / "configs").glob("resnet32_*_cifar10_lt.if100.yaml"))


@pytest.mark.slow
def test_the_gpu_checks_dry_run_steps_every_recipe_resumes_bitwise_and_trains_two_processes_alike(tmp_path: Path):
    data = os.environ.get("LTZOO_DATA") or shared_data_dir()
    if data is None or not (Path(data) / "cifar10_train_jpeg.npz").is_file():
        pytest.skip("needs the shared CIFAR-10 archives (the shared data folder or $LTZOO_DATA)")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path), "LTZOO_DATA": str(data),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for recipe in RECIPES:  # every CIFAR-10-LT recipe with a config
        assert f"{recipe:>13}: " in log, log[-4000:]
    assert "resume: final weights bitwise equal" in log
    assert "two processes: both ranks end with the same weights" in log
    assert (tmp_path / "methods.json").is_file() and (tmp_path / "gpu_check.log").is_file()
