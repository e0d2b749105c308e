"""Balanced contrastive loss, BCL (Zhu et al., CVPR 2022; docs/methods/concutmix.md §2.3 step 4)."""

import torch
from torch import Tensor, nn

from ltzoo.losses.base import upcast


class BalancedContrastiveLoss(nn.Module):
    """BCL over M normalised anchor embeddings z_a (labels y_a) and C normalised class prototypes p_c:

    contrast set A(a) = the M anchors and the C prototypes, without a itself; S_c(a) = its members of class c
    (never empty: it holds p_c). With s_aj = z_a·z_j / T,

        D(a) = Σ_c (1/|S_c(a)|) · Σ_{j∈S_c(a)} exp(s_aj)                      (class-averaged denominator)
        L_a  = −(1/|P(a)|) · Σ_{p∈P(a)} [ s_ap − log D(a) ],  P(a) = S_{y_a}(a)  (other views, own prototype)
        L    = mean of L_a over the M anchors.

    The balancing is in two places: the prototypes are appended to every contrast set (class complement, so
    every class is present in each batch) and each class's exp-terms are averaged over its |S_c(a)| members
    (class averaging, so head classes do not dominate D(a)). Prototypes are never anchors. Without the
    prototypes and the 1/|S_c(a)| factors this is SupCon. Runs in float32 (or float64) even under autocast.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def per_anchor(self, embeddings: Tensor, labels: Tensor, prototypes: Tensor) -> Tensor:
        """L_a for each of the M anchors `embeddings` (M, d) with `labels` (M,), given `prototypes` (C, d)."""
        num_anchors, num_classes = embeddings.shape[0], prototypes.shape[0]
        with torch.autocast(embeddings.device.type, enabled=False):
            z = upcast(embeddings)
            contrast = torch.cat([z, prototypes.to(z.dtype)])
            contrast_labels = torch.cat([labels, torch.arange(num_classes, device=labels.device)])
            similarity = z @ contrast.T / self.temperature
            # The row max is subtracted before exp; it cancels in s_ap − log D(a).
            similarity = similarity - similarity.max(dim=1, keepdim=True).values.detach()

            same_class = labels[:, None] == contrast_labels[None, :]
            is_self = torch.eye(num_anchors, num_anchors + num_classes, dtype=torch.bool, device=z.device)
            not_self = ~is_self
            positives = same_class & not_self
            # |S_c(a)| for j of class c: the class's size in the contrast set, minus 1 for the anchor's own class.
            # counted by scatter, not bincount: bincount reads the largest label back to size its output (a sync)
            class_size = z.new_zeros(num_classes).index_add_(0, contrast_labels, z.new_ones(contrast_labels.shape))
            member_class_size = class_size[contrast_labels][None, :] - same_class.to(z.dtype)

            exp_terms = torch.exp(similarity) * not_self
            log_denominator = torch.log((exp_terms / member_class_size).sum(dim=1))
            positive_sum = (similarity * positives).sum(dim=1)
            return -(positive_sum / positives.sum(dim=1) - log_denominator)

    def forward(self, embeddings: Tensor, labels: Tensor, prototypes: Tensor) -> Tensor:
        """L_BCL: mean of `per_anchor` over the anchors."""
        return self.per_anchor(embeddings, labels, prototypes).mean()
