"""Class-balanced ("effective number") weights and deferred re-weighting, DRW (docs/methods/baselines.md §4.1)."""

from collections.abc import Sequence

import torch
from torch import Tensor

from ltzoo.losses.base import as_class_counts


def class_balanced_weights(class_counts: Sequence[int] | Tensor, beta: float) -> Tensor:
    """w_k = (1 − β)/(1 − β^{n_k}), rescaled so Σ_k w_k = C (Cui et al.); β = 0 gives all ones."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    counts = as_class_counts(class_counts)
    weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (weights * counts.numel() / weights.sum()).float()


class DeferredReweighting:
    """DRW: no class weight before `start_epoch`, class-balanced weights with `beta` from it on (0-based)."""

    def __init__(self, class_counts: Sequence[int] | Tensor, start_epoch: int, beta: float = 0.9999) -> None:
        self.start_epoch = int(start_epoch)
        self.beta = float(beta)
        self._weights = class_balanced_weights(class_counts, self.beta)

    def weights(self, epoch: int) -> Tensor | None:
        """Class weight for 0-based `epoch`: None (plain mean) before the switch, else the β weights."""
        return None if epoch < self.start_epoch else self._weights.clone()
