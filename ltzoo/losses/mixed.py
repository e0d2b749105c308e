"""Two-label mixed loss shared by CMO, SMCL and LSM (docs/methods/baselines.md §4.1 and §6.5)."""

from torch import Tensor

from ltzoo.losses.base import ClassificationLoss


def mixed_label_loss(
    loss: ClassificationLoss,
    logits: Tensor,
    target_a: Tensor,
    target_b: Tensor,
    lam: Tensor | float,
    lam_b: Tensor | float | None = None,
) -> Tensor:
    """L = Σ_i λ_i w_{a_i} ℓ(·, a_i)/Σ_i w_{a_i} + Σ_i λ^b_i w_{b_i} ℓ(·, b_i)/Σ_i w_{b_i}, λ^b = 1 − λ by default.

    Each term is normalised by its own label's weight sum, as the reference codes do; `lam` (and `lam_b`, for
    label weights that do not sum to one, e.g. LSM's unnormalised saliency shares) is one float for the batch or
    a per-sample tensor of shape (B,).
    """
    lam_b = 1.0 - lam if lam_b is None else lam_b
    return loss(logits, target_a, sample_scale=lam) + loss(logits, target_b, sample_scale=lam_b)
