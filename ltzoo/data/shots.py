"""Many / medium / few class groups by training count: the one rule used everywhere (docs/methods/baselines.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltzoo.benchmarks import FEW_BELOW, MANY_ABOVE

__all__ = ["FEW_BELOW", "MANY_ABOVE", "SHOT_GROUPS", "SHOT_RULE", "shot_groups"]

SHOT_GROUPS: tuple[str, ...] = ("many", "medium", "few")
SHOT_RULE: str = (
    "By training count n_k: many if n_k > 100, medium if 20 <= n_k <= 100, few if n_k < 20 "
    "(OLTR / Decoupling shot_acc rule; a class with exactly 20 or exactly 100 images is medium)."
)


def shot_groups(train_counts: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Class ids (ascending, int64) of each group: many n > 100, medium 20 <= n <= 100, few n < 20."""
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"train_counts must be a 1-D sequence of integer per-class training counts, "
                         f"got an array of shape {counts.shape} and dtype {counts.dtype}")
    if (counts < 0).any():
        raise ValueError(f"train_counts must be non-negative; class {int(np.argmin(counts))} has {counts.min()}")
    return {
        "many": np.flatnonzero(counts > MANY_ABOVE).astype(np.int64),
        "medium": np.flatnonzero((counts >= FEW_BELOW) & (counts <= MANY_ABOVE)).astype(np.int64),
        "few": np.flatnonzero(counts < FEW_BELOW).astype(np.int64),
    }
