"""Base class of every per-sample label loss, with the class-weighted mean of docs/methods/baselines.md §4.1."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def upcast(x: Tensor) -> Tensor:
    """Return `x` in float32 if it is in a narrower float type, so losses never run in bf16/fp16."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def as_class_counts(class_counts: Sequence[int] | Tensor) -> Tensor:
    """Training counts n_k as a 1-D float64 tensor; every count must be positive."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).detach().cpu()
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    if not bool((counts > 0).all()):
        raise ValueError("every class count must be positive")
    return counts


class ClassificationLoss(nn.Module):
    """A loss on (logits, int64 labels): L = Σ_i s_i · w_{y_i} · ℓ_i / Σ_i w_{y_i}.

    ℓ_i is `per_sample`, w the optional class weight (w ≡ 1 when unset, giving the plain mean) and
    s_i an optional per-sample scale. Dividing by the batch's weight sum, not by B, is exactly
    `F.cross_entropy(weight=w, reduction='mean')`, as DRW requires.
    """

    class_weight: Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("class_weight", None, persistent=False)

    def set_class_weight(self, weight: Tensor | None) -> None:
        """Set (or clear, with None) the per-class weight w of shape (C,), e.g. each epoch under DRW."""
        self.class_weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).detach()

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        """Unweighted per-sample loss ℓ_i, shape (B,); `forward` hands it float32 (or float64) logits."""
        raise NotImplementedError

    def forward(self, logits: Tensor, target: Tensor, sample_scale: Tensor | float | None = None) -> Tensor:
        """Class-weighted mean of s_i · ℓ_i over the batch, computed in float32 or wider."""
        losses = self.per_sample(upcast(logits), target)
        if sample_scale is not None:
            losses = losses * torch.as_tensor(sample_scale).to(losses, non_blocking=True)
        if self.class_weight is None:
            return losses.mean()
        weight = self.class_weight.to(losses, non_blocking=True)[target]  # set on the host: copy without waiting
        return (weight * losses).sum() / weight.sum()
