"""DSCL's two losses (Xuan & Zhang, AAAI 2024; docs/methods/dscl.md §2.3 steps 5–6): decoupled supervised contrast and
patch-based self distillation, both against a MoCo memory of keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltzoo.losses.base import upcast


def _empty_memory(like: Tensor) -> tuple[Tensor, Tensor]:
    """A memory with no entries: (0, d) features and (0,) labels."""
    return like.new_zeros(0, like.shape[1]), torch.zeros(0, dtype=torch.long, device=like.device)


class DSCLLoss(nn.Module):
    """Decoupled supervised contrastive loss over B normalised queries q_i (labels y_i), their keys k_i and a memory
    M of normalised keys with labels:

    contrast set A(i) = {q_j : j ≠ i} ∪ {k_j : all j} ∪ M, with log p(z | q_i) = q_i·z/T − log Σ_{a∈A(i)} exp(q_i·a/T);
    P'(i) = {z ∈ A(i) : label(z) = y_i, z ≠ k_i}, n_i = |P'(i)|, α = 1/(1 + β);

        L_i = −[ α·log p(k_i | q_i) + ((1 − α)/n_i)·Σ_{z∈P'(i)} log p(z | q_i) ]    if n_i > 0,
        L_i = −log p(k_i | q_i)                                                   if n_i = 0,
        L   = mean_i L_i.

    β = 0 is MoCo InfoNCE (same-class items stay in the denominator); `beta=None` uses β = n_i per anchor, which
    weighs every positive 1/(n_i + 1): SupCon over this contrast set. Queries keep their gradient on both sides;
    keys and memory are constants. Runs in float32 (or float64) even under autocast.
    """

    def __init__(self, temperature: float = 0.07, beta: float | None = 8.0) -> None:
        super().__init__()
        if beta is not None and beta < 0:
            raise ValueError(f"beta must be non-negative (or None for SupCon weights), got {beta}")
        self.temperature = float(temperature)
        self.beta = None if beta is None else float(beta)

    def per_anchor(self, queries: Tensor, keys: Tensor, labels: Tensor, memory: Tensor | None = None,
                   memory_labels: Tensor | None = None) -> Tensor:
        """L_i for each query: `queries`, `keys` (B, d), `labels` (B,), `memory` (K, d) with `memory_labels` (K,)."""
        batch = queries.shape[0]
        with torch.autocast(queries.device.type, enabled=False):
            q = upcast(queries)
            if memory is None:
                memory, memory_labels = _empty_memory(q)
            contrast = torch.cat([q, keys.detach().to(q.dtype), memory.detach().to(q.dtype)])
            contrast_labels = torch.cat([labels, labels, memory_labels.to(labels.device)])
            logits = q @ contrast.T / self.temperature
            rows = torch.arange(batch, device=q.device)
            is_self = torch.zeros_like(logits, dtype=torch.bool)
            is_self[rows, rows] = True
            log_prob = logits - logits.masked_fill(is_self, float("-inf")).logsumexp(dim=1, keepdim=True)

            own_key = rows + batch
            log_prob_key = log_prob[rows, own_key]
            positives = labels[:, None] == contrast_labels[None, :]
            positives[rows, rows] = False
            positives[rows, own_key] = False
            count = positives.sum(dim=1).to(q.dtype)
            positive_sum = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
            alpha = 1.0 / (1.0 + count) if self.beta is None else torch.full_like(count, 1.0 / (1.0 + self.beta))
            decoupled = alpha * log_prob_key + (1.0 - alpha) * positive_sum / count.clamp(min=1.0)
            return -torch.where(count > 0, decoupled, log_prob_key)

    def forward(self, queries: Tensor, keys: Tensor, labels: Tensor, memory: Tensor | None = None,
                memory_labels: Tensor | None = None) -> Tensor:
        """L_DSCL: mean of `per_anchor` over the B queries."""
        return self.per_anchor(queries, keys, labels, memory, memory_labels).mean()


class PBSDLoss(nn.Module):
    """Patch-based self distillation, label-free. For image i and patch j, with the memory R_i = [k_i ; M] (the
    image's own key and the memory entries; other batch items excluded):

        t_ij = softmax(R_i·c_ij / T)        (teacher: ROI-pooled patch feature of the query map, no gradient)
        L    = mean_{i,j} [ −Σ_r t_ij(r) · log softmax(R_i·s_ij / T)(r) ]     (student: the patch's own pass)

    i.e. (1/L) Σ_j mean_i of the soft cross-entropy (KL up to the teacher's entropy). With an empty memory R_i
    holds only k_i and the loss is 0. Runs in float32 (or float64) even under autocast.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def _logits(self, patches: Tensor, keys: Tensor, memory: Tensor) -> Tensor:
        """(B, L, 1 + K) similarities R_i·z_ij / T of every patch embedding with its image's memory."""
        own = torch.einsum("bld,bd->bl", patches, keys)[..., None]
        shared = patches @ memory.T
        return torch.cat([own, shared], dim=-1) / self.temperature

    def forward(self, students: Tensor, teachers: Tensor, keys: Tensor, memory: Tensor | None = None) -> Tensor:
        """L_PBSD for `students`, `teachers` (B, L, d), `keys` (B, d) and `memory` (K, d), all normalised."""
        with torch.autocast(students.device.type, enabled=False):
            s = upcast(students)
            k = keys.detach().to(s.dtype)
            m = (_empty_memory(s.flatten(0, 1))[0] if memory is None else memory).detach().to(s.dtype)
            target = F.softmax(self._logits(teachers.detach().to(s.dtype), k, m), dim=-1)
            log_student = F.log_softmax(self._logits(s, k, m), dim=-1)
            return -(target * log_student).sum(dim=-1).mean()
