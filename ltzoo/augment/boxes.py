"""CutMix-style boxes: CMO's random box (docs/methods/baselines.md §6.3) and the SaliencyMix box centred on a peak (§9).

A box is (x1, y1, x2, y2) with x along the FIRST spatial axis (rows, size H) and y along the second (columns,
size W), as the reference codes index `images[:, :, x1:x2, y1:y2]`. Boxes come as int64 tensors of shape (N, 4):
one row per image, or a single row shared by the whole batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def box_size(height: int, width: int, lam: float) -> tuple[int, int]:
    """Side lengths of a box covering about 1 − λ of the image: cut = int(side · sqrt(1 − λ))."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    ratio = math.sqrt(1.0 - lam)
    return int(height * ratio), int(width * ratio)


def centred_boxes(centres: Tensor, height: int, width: int, lam: float) -> Tensor:
    """Boxes of `box_size(λ)` centred on integer (row, col) `centres` (N, 2), clipped to the image:

    x1 = clip(r − cut_h//2, 0, H), x2 = clip(r + cut_h//2, 0, H); likewise y1, y2 with c, cut_w and W.
    """
    cut_h, cut_w = box_size(height, width, lam)
    rows, cols = centres[:, 0].long(), centres[:, 1].long()
    x1 = (rows - cut_h // 2).clamp(0, height)
    x2 = (rows + cut_h // 2).clamp(0, height)
    y1 = (cols - cut_w // 2).clamp(0, width)
    y2 = (cols + cut_w // 2).clamp(0, width)
    return torch.stack((x1, y1, x2, y2), dim=1)


def random_centres(count: int, height: int, width: int, rng: np.random.Generator) -> Tensor:
    """`count` integer (row, col) centres drawn uniformly over [0, H) × [0, W) (CMO's box centre)."""
    rows = rng.integers(0, height, size=count)
    cols = rng.integers(0, width, size=count)
    return torch.as_tensor(np.stack((rows, cols), axis=1), dtype=torch.long)


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boolean masks (N, 1, H, W), True inside each box [x1, x2) × [y1, y2)."""
    rows = torch.arange(height, device=boxes.device).view(1, height, 1)
    cols = torch.arange(width, device=boxes.device).view(1, 1, width)
    x1, y1, x2, y2 = (boxes[:, k].view(-1, 1, 1) for k in range(4))
    inside = (rows >= x1) & (rows < x2) & (cols >= y1) & (cols < y2)
    return inside.unsqueeze(1)


def kept_area(boxes: Tensor, height: int, width: int) -> Tensor:
    """λ̂ = 1 − (x2 − x1)(y2 − y1)/(H·W) per box, as float32 (N,)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return 1.0 - area.float() / float(height * width)
