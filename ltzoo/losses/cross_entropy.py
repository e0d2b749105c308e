"""Cross-entropy on hard labels and on soft (mixed) targets."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ltzoo.losses.base import ClassificationLoss, upcast
from ltzoo.losses.logit_adjust import log_class_prior


class CrossEntropyLoss(ClassificationLoss):
    """Softmax cross-entropy: ℓ_i = −log softmax(z_i)_{y_i}; class-weighted mean as in `ClassificationLoss`."""

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, reduction="none")


class SoftTargetCrossEntropy(nn.Module):
    """Soft-target CE: L = −(1/B) Σ_i Σ_c y_ic · log softmax(z_i + τ·log π)_c.

    Built with class counts it is the logit-adjusted form of ConCutMix (docs/methods/concutmix.md §3.3); without,
    τ·log π is 0. Uses log_softmax in float32, so an underflowing probability cannot give NaN (§0.4).
    """

    log_prior: Tensor | None

    def __init__(self, class_counts: Sequence[int] | Tensor | None = None, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)
        prior = None if class_counts is None else log_class_prior(class_counts)
        self.register_buffer("log_prior", prior, persistent=False)

    def forward(self, logits: Tensor, soft_target: Tensor) -> Tensor:
        logits = upcast(logits)
        if self.log_prior is not None:
            logits = logits + self.tau * self.log_prior.to(logits, non_blocking=True)
        log_probs = F.log_softmax(logits, dim=-1)
        return -(soft_target.to(log_probs.dtype) * log_probs).sum(dim=-1).mean()
