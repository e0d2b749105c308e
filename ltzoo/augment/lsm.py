"""LSM's patch-level operators (docs/methods/lsm.md §3 steps 2–6): units, unit saliency, top-K mask, pixel mask, soft
label, and `LSMPatchRegion`, the `patch_topk` region of the paired-minority engine (background = head, minority = tail).

A batch of images (B, C, H, W) is cut into N = (H/p)(W/p) units of p×p pixels; unit j is the block at grid
position (j div (W/p), j mod (W/p)), raster order. Unit masks are bool (B, N), True = the unit comes from the tail.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .saliency import model_saliency, upsample

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
    scores = F.avg_pool2d(upsample(saliency_maps.float(), size).unsqueeze(1), p).flatten(1)
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


def unit_pixel_mask(mask: Tensor, p: int, height: int, width: int) -> Tensor:
    """The unit mask (B, N) repeated p×p per unit, (B, 1, H, W): the pixel form of the mixing, as
    where(pixel mask, x_t, x_h) = P_p^{−1}(M ⊙ P_p(x_t) + (1 − M) ⊙ P_p(x_h))."""
    rows, cols = _grid(height, width, p)
    return mask.view(-1, 1, rows, 1, cols, 1).expand(-1, 1, rows, p, cols, p).reshape(-1, 1, height, width)


def dynamic_soft_label(
    scores_tail: Tensor,
    scores_head: Tensor | None,
    mask: Tensor,
    head_weight: str = "saliency",
    normalise: bool = True,
) -> tuple[Tensor, Tensor]:
    """(w̄_h, w̄_t) per image: w_t = Σ_{M=1} ŝ^t, w_h = Σ_{M=0} ŝ^h (or 1 − K/N with `area`), w̄ = w/(w_t + w_h).

    `normalise=False` returns (w_h, w_t); either way w_t + w_h < ε falls back to the area weights (1 − K/N, K/N).
    Top-K keeps w_t ≥ K/N, but w̄_t can fall below K/N when the head's salient units survive (docs/methods/lsm.md §3
    step 6 says it cannot; the formula is followed).
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


class LSMPatchRegion:
    """LSM's region for `PairedMinorityEngine(region="patch_topk")`: the Grad-CAM unit scores of the tail (minority)
    and head (background) images from one saliency pass, the tail's unit mask and the label weights (w̄_h, w̄_t),
    or SnapMix's unnormalised (w_h, w_t) with `normalise=False`."""

    def __init__(self, patch_size: int = 4, mask_rule: str = "topk_beta", head_weight: str = "saliency",
                 normalise: bool = True) -> None:
        if mask_rule not in MASK_RULES:
            raise ValueError(f"unknown mask rule {mask_rule!r}; choose one of {MASK_RULES}")
        if head_weight not in HEAD_WEIGHTS:
            raise ValueError(f"unknown head weight {head_weight!r}; choose one of {HEAD_WEIGHTS}")
        self.patch_size, self.mask_rule, self.head_weight = patch_size, mask_rule, head_weight
        self.normalise = normalise

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, minor_images: Tensor,
                 minor_labels: Tensor, lam: float) -> tuple[Tensor, Tensor, Tensor]:
        if self.head_weight == "saliency":  # one saliency pass over [x_t; x_h]
            both = torch.cat((minor_images, images)), torch.cat((minor_labels, labels))
            scores_tail, scores_head = self._scores(model, *both).split(labels.shape[0])
        else:
            scores_tail, scores_head = self._scores(model, minor_images, minor_labels), None
        mask = unit_mask(scores_tail, lam, self.mask_rule)
        w_head, w_tail = dynamic_soft_label(scores_tail, scores_head, mask, self.head_weight, self.normalise)
        return unit_pixel_mask(mask, self.patch_size, images.shape[-2], images.shape[-1]), w_head, w_tail

    def _scores(self, model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        """ŝ (B, N): the own-label Grad-CAM of each image, upsampled, patch-averaged and sum-normalised."""
        maps = model_saliency(model, images, labels, "gradcam")
        return unit_scores(maps, self.patch_size, (images.shape[-2], images.shape[-1]))
