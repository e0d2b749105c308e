"""Supervised contrastive loss, SupCon (Khosla et al.; docs/methods/baselines.md §7)."""

import torch
from torch import Tensor, nn

from ltzoo.losses.base import upcast


class SupConLoss(nn.Module):
    """SupCon over M normalised embeddings z_a, each an anchor:

    L_a = −(τ/τ_base) · Σ_{p≠a} m_{ap} · log[ exp(z_a·z_p/τ) / Σ_{q≠a} exp(z_a·z_q/τ) ] / D_a,
    D_a = Σ_{p≠a} m_{ap} (1 when below 1e-6), L = mean of L_a over all M anchors.

    m_{ap} = 1[c_p = c_a] from `labels`, or a real-valued `mask`; anchors without positives contribute
    0 and still count in the mean. Runs in float32 (or float64) even under autocast.
    """

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)

    def forward(self, features: Tensor, labels: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Loss for `features` (M, d) with either `labels` (M,) or a positive `mask` (M, M)."""
        if (labels is None) == (mask is None):
            raise ValueError("SupConLoss needs exactly one of `labels` or `mask`")
        with torch.autocast(features.device.type, enabled=False):
            z = upcast(features)
            if mask is None:
                mask = labels.reshape(-1, 1) == labels.reshape(1, -1)
            not_self = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
            positives = mask.to(z) * not_self
            similarity = z @ z.T / self.temperature
            # logsumexp subtracts the row max internally: the stable form of log Σ_{q≠a} exp(·).
            log_denominator = similarity.masked_fill(~not_self, float("-inf")).logsumexp(dim=1, keepdim=True)
            log_prob = similarity - log_denominator
            count = positives.sum(dim=1)
            count = torch.where(count < 1e-6, torch.ones_like(count), count)
            mean_log_prob_pos = (positives * log_prob).sum(dim=1) / count
            return -(self.temperature / self.base_temperature) * mean_log_prob_pos.mean()
