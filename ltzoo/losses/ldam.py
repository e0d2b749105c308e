"""LDAM, label-distribution-aware margin loss (Cao et al.; baselines §4.2)."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ltzoo.losses.base import ClassificationLoss, as_class_counts


def ldam_margins(class_counts: Sequence[int] | Tensor, max_margin: float = 0.5) -> Tensor:
    """Margins m_k ∝ n_k^{−1/4}, rescaled so that the largest (rarest class) equals `max_margin`."""
    margins = as_class_counts(class_counts).pow(-0.25)
    return (margins * (max_margin / margins.max())).float()


class LDAMLoss(ClassificationLoss):
    """LDAM: ℓ_i = CE( s·(z_i − m_{y_i} e_{y_i}), y_i ), the margin subtracted from the true class only.

    Expects cosine logits z ∈ [−1, 1] (a NormedLinear head); the scale s lives here, not in the model.
    Combine with `DeferredReweighting` through `set_class_weight` for LDAM-DRW.
    """

    margins: Tensor

    def __init__(self, class_counts: Sequence[int] | Tensor, max_margin: float = 0.5, scale: float = 30.0) -> None:
        super().__init__()
        self.scale = float(scale)
        self.register_buffer("margins", ldam_margins(class_counts, max_margin), persistent=False)

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        margin = self.margins.to(logits)[target]
        shifted = logits - F.one_hot(target, logits.shape[-1]).to(logits) * margin.unsqueeze(-1)
        return F.cross_entropy(self.scale * shifted, target, reduction="none")
