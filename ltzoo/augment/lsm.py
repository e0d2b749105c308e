"""LSM's patch-level operators (lsm.md §3 steps 2, 4, 5, 6): units, unit saliency, top-K mask, mixing, soft label.

A batch of images (B, C, H, W) is cut into N = (H/p)(W/p) units of p×p pixels; unit j is the block at grid
position (j div (W/p), j mod (W/p)), raster order. Masks are bool (B, N), True = the unit comes from the tail image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-8
MASK_RULES = ("topk_beta", "threshold")
HEAD_WEIGHTS = ("saliency", "area")


def _grid(height: int, width: int, p: int) -> tuple[int, int]:
    """The unit grid (H/p, W/p); p must divide H and W."""
    if p < 1 or height % p or width % p:
        raise ValueError(f"patch size p={p} must divide the image size {height}×{width}")
    return height // p, width // p


def patchify(x: Tensor, p: int) -> Tensor:
    """P_p(x): (B, C, H, W) → (B, N, C·p²) by pixel-unshuffle; row j is unit j's block, flattened (c, i, k)."""
    _grid(x.shape[-2], x.shape[-1], p)
    return F.pixel_unshuffle(x, p).flatten(2).transpose(1, 2)


def unpatchify(units: Tensor, p: int, height: int, width: int) -> Tensor:
    """P_p^{−1}: (B, N, C·p²) → (B, C, H, W) by pixel-shuffle; the exact inverse of `patchify`."""
    rows, cols = _grid(height, width, p)
    return F.pixel_shuffle(units.transpose(1, 2).reshape(units.shape[0], -1, rows, cols), p)


def unit_scores(saliency_maps: Tensor, p: int, size: tuple[int, int]) -> Tensor:
    """ŝ_j = s_j / Σ_l s_l, s = avg-pool_p(bilinear upsample of the (B, h, w) maps to `size`); shape (B, N).

    No minimum subtraction; a map whose unit scores sum below ε = 1e-8 becomes uniform 1/N.
    """
    _grid(size[0], size[1], p)
    upsampled = F.interpolate(saliency_maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False)
    scores = F.avg_pool2d(upsampled, p).flatten(1)
    total = scores.sum(dim=1, keepdim=True)
    uniform = torch.full_like(scores, 1.0 / scores.shape[1])
    return torch.where(total >= EPS, scores / total.clamp_min(EPS), uniform)


def num_kept_units(lam: float, num_units: int) -> int:
    """K = floor((1 − λ)·N + 0.5), clamped to [1, N − 1]."""
    return min(max(math.floor((1.0 - lam) * num_units + 0.5), 1), num_units - 1)


def unit_mask(scores: Tensor, lam: float | None = None, rule: str = "topk_beta") -> Tensor:
    """The tail mask M (B, N): the K most salient units per image, ties to the lower index (stable sort).

    `topk_beta`: K = `num_kept_units(lam, N)` for the whole batch; `threshold`: K_i = #{j: ŝ_ij ≥ 1/N} per image,
    clamped to [1, N − 1] (`lam` unused).
    """
    num_units = scores.shape[1]
    if rule == "topk_beta":
        if lam is None:
            raise ValueError("mask rule 'topk_beta' needs lam")
        kept = torch.full((scores.shape[0], 1), num_kept_units(lam, num_units), device=scores.device)
    elif rule == "threshold":
        kept = (scores >= 1.0 / num_units).sum(dim=1, keepdim=True).clamp(1, num_units - 1)
    else:
        raise ValueError(f"unknown mask rule {rule!r}; choose one of {MASK_RULES}")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(num_units, device=scores.device).expand_as(order))
    return rank < kept


def mix_units(x_tail: Tensor, x_head: Tensor, mask: Tensor, p: int) -> Tensor:
    """x_mix = P_p^{−1}(M ⊙ P_p(x_t) + (1 − M) ⊙ P_p(x_h)), computed per pixel with M repeated p×p."""
    rows, cols = _grid(x_tail.shape[-2], x_tail.shape[-1], p)
    pixel_mask = mask.view(-1, 1, rows, 1, cols, 1).expand(-1, 1, rows, p, cols, p)
    pixel_mask = pixel_mask.reshape(-1, 1, rows * p, cols * p)
    return torch.where(pixel_mask, x_tail, x_head)


def dynamic_soft_label(
    scores_tail: Tensor,
    scores_head: Tensor | None,
    mask: Tensor,
    head_weight: str = "saliency",
    normalise: bool = True,
) -> tuple[Tensor, Tensor]:
    """(w̄_h, w̄_t) per image: w_t = Σ_{M=1} ŝ^t, w_h = Σ_{M=0} ŝ^h (or 1 − K/N with `area`), w̄ = w/(w_t + w_h).

    `normalise=False` returns (w_h, w_t); either way w_t + w_h < ε falls back to the area weights (1 − K/N, K/N).
    """
    if head_weight not in HEAD_WEIGHTS:
        raise ValueError(f"unknown head weight {head_weight!r}; choose one of {HEAD_WEIGHTS}")
    kept = mask.to(scores_tail.dtype)
    area_tail = kept.mean(dim=1)
    w_tail = (scores_tail * kept).sum(dim=1)
    if head_weight == "area":
        w_head = 1.0 - area_tail
    elif scores_head is None:
        raise ValueError("head_weight 'saliency' needs scores_head")
    else:
        w_head = (scores_head * (1.0 - kept)).sum(dim=1)
    total = w_tail + w_head
    if normalise:
        w_head, w_tail = w_head / total.clamp_min(EPS), w_tail / total.clamp_min(EPS)
    degenerate = total < EPS
    return torch.where(degenerate, 1.0 - area_tail, w_head), torch.where(degenerate, area_tail, w_tail)
