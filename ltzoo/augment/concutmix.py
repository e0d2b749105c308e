"""ConCutMix semantic label rectification (docs/methods/concutmix.md §3.4), exactly as the official code computes it.

The area label ỹ of a CutMix image is blended with a "semantic" label from its distances to the class prototypes
in the (unnormalised) contrastive space. Everything here is detached and float32 or wider: the label carries
no gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ltzoo.losses.base import as_class_counts, upcast

RHO_NORMS = ("sum", "mean")
MIN_DISTANCE = 1e-12


def semantic_label(projections: Tensor, prototypes: Tensor, topk: int) -> Tensor:
    """sem_i = top-k of sim_i, L1-normalised, with sim_ic = 1 / max(‖u_i − q_c‖₂, 1e-12).

    `projections` u (B, d) and `prototypes` q (C, d) are the unnormalised head outputs. Entries below the k-th
    largest similarity are zeroed; ties at the k-th value are kept, so a row may keep more than k entries.
    """
    if not 1 <= topk <= prototypes.shape[0]:
        raise ValueError(f"topk must lie in [1, {prototypes.shape[0]}] (the number of classes), got {topk}")
    with torch.no_grad(), torch.autocast(projections.device.type, enabled=False):
        u = upcast(projections.detach())
        distance = torch.cdist(u, prototypes.detach().to(u.dtype), compute_mode="donot_use_mm_for_euclid_dist")
        similarity = 1.0 / distance.clamp(min=MIN_DISTANCE)
        kth_largest = similarity.topk(topk, dim=1).values[:, -1:]
        similarity = torch.where(similarity < kth_largest, torch.zeros_like(similarity), similarity)
        return similarity / similarity.sum(dim=1, keepdim=True)


def rectification_weight(area_target: Tensor, class_counts: Tensor, omega: float, rho_norm: str = "sum") -> Tensor:
    """ρ_i = ω · log(Σ_c N_c·ỹ_ic) / Σ_c log N_c  (`rho_norm="sum"`, official), or / mean_c log N_c (`"mean"`).

    Σ_c N_c·ỹ_ic = λ·N_{a_i} + (1 − λ)·N_{b_i} for a two-class area label ỹ. Returns shape (B,), in ỹ's dtype
    (float32 at least); the counts enter in float64.
    """
    if rho_norm not in RHO_NORMS:
        raise ValueError(f"rho_norm must be one of {RHO_NORMS}, got {rho_norm!r}")
    if not math.isfinite(omega) or omega < 0:
        raise ValueError(f"omega must be a non-negative number, got {omega}")
    counts = as_class_counts(class_counts).to(area_target.device, non_blocking=True)
    log_counts = counts.log()
    normaliser = log_counts.sum() if rho_norm == "sum" else log_counts.mean()
    with torch.no_grad():
        mixed_count = area_target.detach().to(torch.float64) @ counts
        rho = omega * mixed_count.log() / normaliser
    return rho.to(upcast(area_target).dtype)


def rectify_label(
    area_target: Tensor,
    projections: Tensor,
    prototypes: Tensor,
    class_counts: Tensor,
    topk: int,
    omega: float,
    rho_norm: str = "sum",
) -> Tensor:
    """y*_i = ρ_i·sem_i + (1 − ρ_i)·ỹ_i (no softmax, no temperature); rows sum to 1, no gradient.

    ỹ = `area_target` (B, C); sem from `semantic_label(projections, prototypes, topk)`; ρ from
    `rectification_weight(area_target, class_counts, omega, rho_norm)`.
    """
    with torch.no_grad():
        target = upcast(area_target.detach())
        semantic = semantic_label(projections, prototypes, topk).to(target.dtype)
        rho = rectification_weight(target, class_counts, omega, rho_norm)[:, None]
        return rho * semantic + (1.0 - rho) * target
