"""Post-hoc adjustments of a trained classifier at inference, from the training class counts.

- Logit adjustment (Menon et al., ICLR 2021): predict with argmax_k z_k − τ·log π_k, π the training prior.
- τ-normalised classifier (Kang et al., ICLR 2020): a linear head's class vectors become w_k / ‖w_k‖^τ. The bias is
  kept as trained (so τ = 0 is exactly the plain model); the zoo's linear heads are CE-trained with a bias.

Both apply to cached outputs (logits, or penultimate features for τ-norm) so a τ sweep runs the model once, and to
a model (``apply_posthoc``) for ``create_model``; the two give the same logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ltzoo.evaluate import Predictions
from ltzoo.losses.logit_adjust import log_class_prior, posthoc_logit_adjust

__all__ = ["POSTHOC_KINDS", "TAU_GRID", "apply_posthoc", "posthoc_logits",
           "tau_normalized_weight"]

POSTHOC_KINDS: tuple[str, ...] = ("logit_adjust", "tau_norm")
TAU_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(31))  # 0.0, 0.1, ..., 3.0


def _check_tau(kind: str, tau: float) -> float:
    tau = float(tau)
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"{kind} τ must be a finite number ≥ 0, got {tau}")
    return tau


def _linear_head(classifier: nn.Module) -> nn.Linear:
    """The classifier as an nn.Linear, or a ValueError: τ-normalisation rescales a linear head's class vectors."""
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"tau_norm needs a linear classifier, this model's is {type(classifier).__name__} "
                         "(a cosine classifier's class vectors are already normalised)")
    return classifier


def tau_normalized_weight(weight: Tensor, tau: float) -> Tensor:
    """W (C, d) with each row divided by its L2 norm to the power τ."""
    tau = _check_tau("tau_norm", tau)
    return weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12).pow(tau)


def posthoc_logits(predictions: Predictions, classifier: nn.Module, train_counts: Sequence[int] | np.ndarray,
                   logit_adjust: float | None = None, tau_norm: float | None = None) -> Tensor:
    """Logits after τ-normalising ``classifier`` (recomputed from the cached features) and/or logit adjustment."""
    logits = predictions.logits
    if tau_norm is not None:
        head = _linear_head(classifier)
        if predictions.features is None:
            raise ValueError("tau_norm needs the penultimate features, and these predictions have none")
        weight = tau_normalized_weight(head.weight.detach().float().cpu(), tau_norm)
        bias = None if head.bias is None else head.bias.detach().float().cpu()
        logits = torch.nn.functional.linear(predictions.features.float(), weight, bias)
    if logit_adjust is not None:
        logits = posthoc_logit_adjust(logits, train_counts, _check_tau("logit_adjust", logit_adjust))
    return logits


def apply_posthoc(model: nn.Module, train_counts: Sequence[int] | np.ndarray, logit_adjust: float | None = None,
                  tau_norm: float | None = None) -> nn.Module:
    """Make ``model`` predict with the post-hoc adjustments in place: τ-normalise its linear head's weight, and
    subtract τ·log π from its classifier's output (a forward hook, so forward, forward_head and CAMs all see it).
    Records the settings in ``model.pretrained_cfg["posthoc"]`` when the model has a pretrained cfg."""
    classifier = model.get_classifier()
    if tau_norm is not None:
        head = _linear_head(classifier)
        with torch.no_grad():
            head.weight.copy_(tau_normalized_weight(head.weight, tau_norm))
    if logit_adjust is not None:
        tau = _check_tau("logit_adjust", logit_adjust)
        shift = tau * log_class_prior(train_counts)
        if len(shift) != getattr(model, "num_classes", len(shift)):
            raise ValueError(f"train_counts has {len(shift)} classes but the model has {model.num_classes}")
        classifier.register_buffer("posthoc_log_prior_shift", shift, persistent=False)
        classifier.register_forward_hook(lambda module, _, output: output - module.posthoc_log_prior_shift.to(output))
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg["posthoc"] = {"logit_adjust": logit_adjust, "tau_norm": tau_norm}
    return model
