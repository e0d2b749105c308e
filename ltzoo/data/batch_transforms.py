"""Batched transform plumbing: the ``t(x, generator)`` protocol, ``Compose``, ``Normalize`` and the CIFAR eval pipeline.

Every transform is a callable ``t(x, generator)`` on a batch ``x`` of shape (B, C, H, W) that draws all of its
randomness from ``generator``, so a whole batch is augmented by a few tensor ops instead of B PIL calls.
The augmentations themselves (crops and flips, colour, blur, AutoAugment, RandAugment, each recipe's views) live in
``ltzoo.augment``; they take and return uint8, and ``Normalize`` turns uint8 into normalised float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..benchmarks import CIFAR_MEAN, CIFAR_STD

__all__ = [
    "BatchTransform",
    "Compose",
    "Normalize",
    "cifar_eval_transform",
]


BatchTransform = Callable[[Tensor, torch.Generator], Tensor | tuple[Tensor, ...]]


class Compose:
    """Apply batch transforms one after another, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x


class Normalize:
    """Convert uint8 (scaled by 1/255) or float [0, 1] images to float32 ``(x - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self._mean_uint8, self._std_uint8 = self.mean * 255.0, self.std * 255.0
        self._on_device: dict[torch.device, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def _constants(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mean, std, mean·255, std·255) on ``device``, copied there once."""
        if device not in self._on_device:
            self._on_device[device] = tuple(t.to(device, non_blocking=True) for t in (
                self.mean, self.std, self._mean_uint8, self._std_uint8))
        return self._on_device[device]

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim < 3 or x.shape[-3] != self.mean.shape[0]:
            raise ValueError(f"expected {self.mean.shape[0]} channels at dim -3, got shape {tuple(x.shape)}")
        mean, std, mean_uint8, std_uint8 = self._constants(x.device)
        if x.dtype == torch.uint8:
            return x.to(torch.float32).sub_(mean_uint8).div_(std_uint8)
        if not x.is_floating_point():
            raise TypeError(f"expected uint8 or floating-point images, got dtype {x.dtype}")
        return (x.to(torch.float32) - mean) / std


def cifar_eval_transform(mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> Compose:
    """CIFAR evaluation: Normalize only."""
    return Compose([Normalize(mean, std)])
