"""The control loop of benchmarks/reference_training.py follows the LDAM-DRW code's per-epoch LR
(docs/methods/baselines.md §5)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a folder of scripts beside the package
from benchmarks.reference_training import reference_lr  # noqa: E402


@pytest.mark.parametrize(("epoch", "lr"), [(0, 0.02), (4, 0.1), (159, 0.1), (160, 1e-3), (179, 1e-3), (180, 1e-5),
                                           (199, 1e-5)])
def test_the_reference_lr_matches_the_spec_check_values(epoch: int, lr: float):
    assert reference_lr(epoch) == pytest.approx(lr)
