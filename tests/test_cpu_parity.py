"""Refactors and the move of augmentation onto the training device changed nothing on the CPU, bit for bit.

`tests/data/cpu_parity.json` holds what `benchmarks/cpu_parity.py` measures: sha256 digests of seeded batches of every
CIFAR training pipeline (recorded from the code before batches were augmented on the device), and of the final weights
of a tiny two-epoch `training/train.py` run per CIFAR-10-LT recipe (re-recorded on an AVX2 machine from the code before
the one-home refactor, d6968eb; la and cmo from the code that added them). Float kernels differ between CPU models,
kernel levels (AVX2, AVX512) and torch versions, so the comparison runs only on the platform the record names;
elsewhere it skips, saying so."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ltzoo.data.sources import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import cpu_parity  # noqa: E402

RECORD = json.loads((ROOT / "tests" / "data" / "cpu_parity.json").read_text())


@pytest.fixture(autouse=True)
def same_platform_and_data() -> Iterator[None]:
    """The record's thread count (float sums depend on it) for the test; other CPUs or torch builds skip."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if cpu_parity.platform_key() != RECORD["platform"]:
            pytest.skip(f"the record is from {RECORD['platform']!r}; this is {cpu_parity.platform_key()!r}")
        data = os.environ.get("LTZOO_DATA") or shared_data_dir()
        if data is None or not (Path(data) / "cifar10_train_jpeg.npz").is_file():
            pytest.skip("needs the shared CIFAR-10 archives (the shared data folder or $LTZOO_DATA)")
        yield
    finally:
        torch.set_num_threads(threads)


def test_every_cifar_pipeline_gives_the_recorded_batches_bit_for_bit():
    assert cpu_parity.pipeline_digests() == RECORD["pipelines"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECORD["runs"]))
def test_a_tiny_run_of_every_recipe_ends_with_the_recorded_weights(recipe: str):
    assert cpu_parity.run_digests([recipe]) == {recipe: RECORD["runs"][recipe]}
