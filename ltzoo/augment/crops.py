"""Batched random crops and flips, torchvision's distributions with independent parameters per image (uint8 in, out).

Resampling rounds to nearest; ``resized_crop`` is antialiased bilinear, as torchvision's ``antialias=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor

from ._batch import _check_probability, _check_uint8_batch, _on, _randint, _round_to_uint8

__all__ = ["RandomCropFlip", "RandomHorizontalFlip", "RandomResizedCrop", "resized_crop", "sample_resized_crop_boxes"]


class RandomCropFlip:
    """Zero-padded random crop and horizontal flip with independent offsets and flips per image.

    Same distribution as torchvision ``RandomCrop(size, padding)`` followed by ``RandomHorizontalFlip(flip_p)``.
    """

    def __init__(self, size: int = 32, padding: int = 4, flip_p: float = 0.5) -> None:
        if size <= 0 or padding < 0:
            raise ValueError(f"size must be positive and padding non-negative, got size={size}, padding={padding}")
        _check_probability(flip_p, "flip_p")
        self.size, self.padding, self.flip_p = size, padding, flip_p

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x)
        b, c, h, w = x.shape
        p, size = self.padding, self.size
        padded_h, padded_w = h + 2 * p, w + 2 * p
        if padded_h < size or padded_w < size:
            raise ValueError(f"crop size {size} is larger than the padded image ({padded_h}x{padded_w})")
        top = torch.randint(0, padded_h - size + 1, (b,), generator=generator)
        left = torch.randint(0, padded_w - size + 1, (b,), generator=generator)
        flip = torch.rand(b, generator=generator) < self.flip_p
        top, left, flip = _on(x, top), _on(x, left), _on(x, flip)
        steps = torch.arange(size, device=x.device)
        rows = top[:, None] + steps
        cols = left[:, None] + torch.where(flip[:, None], steps.flip(0), steps)
        flat_index = (rows[:, :, None] * padded_w + cols[:, None, :]).view(b, 1, size * size).expand(b, c, -1)
        padded = nnf.pad(x, (p, p, p, p)).view(b, c, padded_h * padded_w)
        return padded.gather(2, flat_index).view(b, c, size, size)


class RandomHorizontalFlip:
    """Flip each image left-right with probability ``p``, independently per image."""

    def __init__(self, p: float = 0.5) -> None:
        _check_probability(p)
        self.p = p

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x)
        flip = _on(x, torch.rand(x.shape[0], generator=generator) < self.p)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def sample_resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    tries: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image (top, left, height, width) boxes drawn as torchvision ``RandomResizedCrop.get_params``.

    Each image takes its first of ``tries`` valid boxes, else torchvision's centre-crop fallback.
    """
    area = height * width
    target_area = area * (torch.rand(n, tries, generator=generator, dtype=torch.float64) * (scale[1] - scale[0]))
    target_area = target_area + area * scale[0]
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    log_aspect = torch.rand(n, tries, generator=generator, dtype=torch.float64) * (log_high - log_low) + log_low
    aspect = torch.exp(log_aspect)
    box_w = torch.sqrt(target_area * aspect).round().long()
    box_h = torch.sqrt(target_area / aspect).round().long()
    valid = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = valid.long().argmax(dim=1, keepdim=True)
    found = valid.any(dim=1)
    box_w, box_h = box_w.gather(1, first).squeeze(1), box_h.gather(1, first).squeeze(1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = int(round(height * max(ratio))), height
    else:
        fallback_w, fallback_h = width, height
    box_w = torch.where(found, box_w, fallback_w)
    box_h = torch.where(found, box_h, fallback_h)
    top = torch.where(found, _randint(n, height - box_h + 1, generator), (height - fallback_h) // 2)
    left = torch.where(found, _randint(n, width - box_w + 1, generator), (width - fallback_w) // 2)
    return top, left, box_h, box_w


def _resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Per-image (out_size, in_size) bilinear resampling matrices of the spans [start, start + length).

    The triangle filter widens by the downscaling factor, as torchvision's ``antialias=True`` (and PIL) do.
    """
    step = length.to(torch.float32) / out_size
    support = step.clamp(min=1.0)
    steps = torch.arange(out_size, dtype=torch.float32, device=start.device)
    centre = start.to(torch.float32)[:, None] + (steps + 0.5) * step[:, None]
    pixel = torch.arange(in_size, device=start.device)
    distance = (pixel.to(torch.float32) + 0.5 - centre[:, :, None]) / support[:, None, None]
    inside = (pixel >= start[:, None]) & (pixel < (start + length)[:, None])
    weights = (1.0 - distance.abs()).clamp_(min=0.0) * inside[:, None, :]
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(x: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, size: int) -> Tensor:
    """Crop one box per image and resize it to ``size`` x ``size`` with antialiased bilinear interpolation."""
    rows = _resize_weights(_on(x, top), _on(x, height), x.shape[-2], size)
    cols = _resize_weights(_on(x, left), _on(x, width), x.shape[-1], size)
    out = torch.matmul(torch.matmul(rows[:, None], x.float()), cols[:, None].transpose(-1, -2))
    return _round_to_uint8(out) if x.dtype == torch.uint8 else out


class RandomResizedCrop:
    """Per-image random-area, random-aspect crop resized to ``size`` x ``size`` (bilinear, antialiased).

    Boxes follow torchvision ``RandomResizedCrop.get_params`` (10 tries, then a centre crop).
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    ) -> None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if not 0.0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < low <= high, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x)
        boxes = sample_resized_crop_boxes(x.shape[0], x.shape[-2], x.shape[-1], self.scale, self.ratio, generator)
        return resized_crop(x, *boxes, size=self.size)
