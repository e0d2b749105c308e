"""Focal loss (Lin et al.), the LDAM-DRW CIFAR baseline form (docs/methods/baselines.md §4.4)."""

import torch.nn.functional as F
from torch import Tensor

from ltzoo.losses.base import ClassificationLoss


class FocalLoss(ClassificationLoss):
    """Focal loss: FL_i = (1 − p_i)^γ · ℓ_i with ℓ_i the CE and p_i = exp(−ℓ_i); batch mean.

    Always unweighted: with a class weight inside ℓ_i, p_i would stop being a probability.
    """

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__()
        self.gamma = float(gamma)

    def set_class_weight(self, weight: Tensor | None) -> None:
        """Refuse class weights (docs/methods/baselines.md §4.4); None is accepted and leaves the loss unweighted."""
        if weight is not None:
            raise ValueError("FocalLoss is unweighted by design (docs/methods/baselines.md §4.4); "
                             "it takes no class weight")
        super().set_class_weight(None)

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, target, reduction="none")
        return (1.0 - (-ce).exp()) ** self.gamma * ce
