"""Logit adjustment (Menon et al.) and Balanced Softmax: CE on z + τ·log π (docs/methods/baselines.md §4.3)."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ltzoo.losses.base import ClassificationLoss, as_class_counts


def log_class_prior(class_counts: Sequence[int] | Tensor) -> Tensor:
    """log π_k = log(n_k / Σ_j n_j) as float32, computed in float64 for accuracy."""
    counts = as_class_counts(class_counts)
    return (counts / counts.sum()).log().float()


class LogitAdjustedLoss(ClassificationLoss):
    """Logit-adjusted CE: ℓ_i = −log softmax(z_i + τ·log π)_{y_i}, π the training prior.

    τ = 1 is Balanced Softmax; τ = 0 or a uniform prior is plain CE. Inference uses the raw z.
    """

    log_prior: Tensor

    def __init__(self, class_counts: Sequence[int] | Tensor, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)
        self.register_buffer("log_prior", log_class_prior(class_counts), persistent=False)

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        adjusted = logits + self.tau * self.log_prior.to(logits, non_blocking=True)
        return F.cross_entropy(adjusted, target, reduction="none")


class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """Balanced Softmax (Ren et al.): ℓ_i = −log softmax(z_i + log π)_{y_i}, i.e. logit adjustment with τ = 1."""

    def __init__(self, class_counts: Sequence[int] | Tensor) -> None:
        super().__init__(class_counts, tau=1.0)


def posthoc_logit_adjust(logits: Tensor, class_counts: Sequence[int] | Tensor, tau: float = 1.0) -> Tensor:
    """Post-hoc adjusted scores z − τ·log π for a CE-trained model; predict with their argmax."""
    return logits - tau * log_class_prior(class_counts).to(logits, non_blocking=True)
