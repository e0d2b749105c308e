"""Batched colour augmentations: the per-image colour kernels, ColorJitter and RandomGrayscale (uint8 in, out).

Each kernel takes one factor per image; blends truncate to uint8 as torchvision's tensor kernels and PIL do.
RandAugment's colour ops use the same kernels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ._batch import _check_probability, _check_uint8_batch, _on, _uniform

__all__ = [
    "ColorJitter",
    "RandomGrayscale",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "adjust_sharpness",
]


def _blend(image: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """torchvision's uint8 blend ``factor * image + (1 - factor) * degenerate`` with one factor per image."""
    f = _on(image, factor.to(torch.float32)).view(-1, 1, 1, 1)
    return (image.float() * f + degenerate.float() * (1.0 - f)).clamp_(0, 255).to(torch.uint8)


def _rgb_to_gray(x: Tensor) -> Tensor:
    """torchvision's uint8 luma (0.2989 R + 0.587 G + 0.114 B, truncated), one channel."""
    return TF.rgb_to_grayscale(x, num_output_channels=1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Scale every image by its own brightness factor."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its mean luma by its own contrast factor."""
    mean = _rgb_to_gray(x).float().mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its grayscale version by its own saturation factor."""
    return _blend(x, _rgb_to_gray(x), factor)


def adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its PIL-style smoothed version by its own sharpness factor."""
    return _blend(x, TF.adjust_sharpness(x, 0.0), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of every image by its own shift in [-0.5, 0.5], quantising as torchvision does."""
    rgb = x.float()
    r, g, b = rgb.unbind(dim=1)
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)
    inverse_delta = torch.where(delta > 0, 1.0 / delta, 0.0)
    hue_sextant = torch.where(
        value == r,
        (g - b) * inverse_delta,
        torch.where(value == g, (b - r) * inverse_delta + 2.0, (r - g) * inverse_delta + 4.0),
    )
    hue_sextant = hue_sextant + 6.0 * _on(x, shift.to(torch.float32)).view(-1, 1, 1)
    offsets = torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1)  # 5, 3, 1, made on the device
    sector = (hue_sextant.unsqueeze(1) + offsets).remainder_(6.0)
    ramp = torch.minimum(sector, 4.0 - sector).clamp_(0.0, 1.0)
    out = value.unsqueeze(1) - delta.unsqueeze(1) * ramp
    return out.mul_((255.0 + 1.0 - 1e-3) / 255.0).to(torch.uint8)


class ColorJitter:
    """Per-image brightness, contrast, saturation and hue jitter, as torchvision ``ColorJitter`` per image.

    Applied to each image with probability ``p`` (``RandomApply``); each image draws its own four factors
    and its own random order of the four ops, like torchvision. A strength of 0 disables that op.
    """

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0, p: float = 1.0
    ) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        _check_probability(p)
        self.p = p
        self.ops: tuple[tuple[Callable[[Tensor, Tensor], Tensor], float, float], ...] = (
            (adjust_brightness, max(0.0, 1.0 - brightness), 1.0 + brightness),
            (adjust_contrast, max(0.0, 1.0 - contrast), 1.0 + contrast),
            (adjust_saturation, max(0.0, 1.0 - saturation), 1.0 + saturation),
            (adjust_hue, -hue, hue),
        )
        self.enabled = (brightness > 0, contrast > 0, saturation > 0, hue > 0)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x, channels=3)
        b = x.shape[0]
        apply = torch.rand(b, generator=generator) < self.p
        order = torch.rand(b, len(self.ops), generator=generator).argsort(dim=1)
        factors = [_uniform(b, low, high, generator) for _, low, high in self.ops]
        out = x.clone()
        for step in range(len(self.ops)):
            for op_index, (op, _, _) in enumerate(self.ops):
                if not self.enabled[op_index]:
                    continue
                chosen = (apply & (order[:, step] == op_index)).nonzero().squeeze(1)  # host: no device sync
                if chosen.numel() > 0:
                    on_device = _on(x, chosen)
                    out[on_device] = op(out[on_device], factors[op_index][chosen])
        return out


class RandomGrayscale:
    """Replace each image, with probability ``p``, by its 3-channel luma (torchvision ``RandomGrayscale``)."""

    def __init__(self, p: float = 0.1) -> None:
        _check_probability(p)
        self.p = p

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x, channels=3)
        gray = _on(x, torch.rand(x.shape[0], generator=generator) < self.p)
        return torch.where(gray.view(-1, 1, 1, 1), TF.rgb_to_grayscale(x, num_output_channels=3), x)
