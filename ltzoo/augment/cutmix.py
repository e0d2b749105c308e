"""ConCutMix's CutMix (docs/methods/concutmix.md §3.3 steps 1-3): one box for the whole batch, the paste, the area
label.

The box is CMO's random box (`ltzoo.augment.boxes`); ConCutMix draws one per batch, so λ is one scalar.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .boxes import centred_boxes, kept_area


def cutmix_batch(images: Tensor, patches: Tensor, lam: float, centre: Tensor) -> tuple[Tensor, float]:
    """x̃ = `images` with rows x1:x2, columns y1:y2 taken from `patches`; returns (x̃, λ), λ = 1 − box area/(H·W).

    The box has side int(side·sqrt(1 − `lam`)) and is centred on `centre` (1, 2) = (row, col), clipped to the
    image (`centred_boxes`); the same box for every image of the batch.
    """
    height, width = images.shape[-2:]
    box = centred_boxes(centre, height, width, lam)
    x1, y1, x2, y2 = box[0].tolist()
    mixed = images.clone()
    mixed[..., x1:x2, y1:y2] = patches[..., x1:x2, y1:y2]
    return mixed, float(kept_area(box, height, width)[0])


def area_label(labels_a: Tensor, labels_b: Tensor, lam: float, num_classes: int) -> Tensor:
    """ỹ_i = λ·e(a_i) + (1 − λ)·e(b_i), float32 (B, C); a_i = b_i gives e(a_i)."""
    return lam * F.one_hot(labels_a, num_classes).float() + (1.0 - lam) * F.one_hot(labels_b, num_classes).float()


__all__ = ["area_label", "cutmix_batch"]
