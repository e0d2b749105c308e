"""LDAM, label-distribution-aware margin loss (Cao et al.; docs/methods/baselines.md §4.2)."""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ltzoo.losses.base import ClassificationLoss, as_class_counts


def ldam_margins(class_counts: Sequence[int] | Tensor, max_margin: float = 0.5) -> Tensor:
    """Margins m_k ∝ n_k^{−1/4}, rescaled so that the largest (rarest class) equals `max_margin`."""
    margins = as_class_counts(class_counts).pow(-0.25)
    return (margins * (max_margin / margins.max())).float()


class LDAMLoss(ClassificationLoss):
    """LDAM: ℓ_i = CE( z_i − s·m_{y_i} e_{y_i}, y_i ) on scaled cosine logits z = s·cos (true-class margin only).

    The paper's CE( s·(cos − m_y e_y), y ) with s kept in the model's head (NormedLinear(scale=s)), so that the
    released model's logits are the ones its softmax was trained on; `scale` must equal the head's s.
    Combine with `DeferredReweighting` through `set_class_weight` for LDAM-DRW.
    """

    margins: Tensor

    def __init__(self, class_counts: Sequence[int] | Tensor, max_margin: float = 0.5, scale: float = 30.0) -> None:
        super().__init__()
        self.scale = float(scale)
        self.register_buffer("margins", ldam_margins(class_counts, max_margin), persistent=False)

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        margin = self.margins.to(logits, non_blocking=True)[target]
        shifted = logits - F.one_hot(target, logits.shape[-1]).to(logits) * (self.scale * margin).unsqueeze(-1)
        return F.cross_entropy(shifted, target, reduction="none")
