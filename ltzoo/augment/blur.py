"""Batched Gaussian blur with its own sigma per image (PIL ``GaussianBlur``; uint8 in, out)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._batch import _check_probability, _check_uint8_batch, _on, _round_to_uint8, _uniform

__all__ = ["GaussianBlur"]


def _blur_matrices(kernel: Tensor, size: int) -> Tensor:
    """Per-image (size, size) matrices applying 1-D ``kernel`` (n, K) along an axis, repeating the edge pixel."""
    radius = kernel.shape[1] // 2
    device = kernel.device
    source = (torch.arange(size, device=device)[:, None] + torch.arange(-radius, radius + 1, device=device))
    source = source.clamp_(0, size - 1)
    matrices = torch.zeros(kernel.shape[0], size, size, device=device)
    return matrices.scatter_add_(2, source.expand(kernel.shape[0], -1, -1), kernel[:, None, :].expand(-1, size, -1))


def _gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with one sigma per image; borders repeat the edge pixel as PIL does."""
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / _on(x, sigma.to(torch.float32))[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    rows, cols = _blur_matrices(kernel, x.shape[-2]), _blur_matrices(kernel, x.shape[-1])
    return _round_to_uint8(torch.matmul(torch.matmul(rows[:, None], x.float()), cols[:, None].transpose(-1, -2)))


class GaussianBlur:
    """Gaussian blur applied with probability ``p`` per image, sigma ~ U[sigma] per image (PIL ``GaussianBlur``).

    ``kernel_size=None`` uses 2 * ceil(3 * max sigma) + 1 (13 for sigma up to 2), covering +-3 sigma like PIL's
    untruncated blur; torchvision's SimCLR rule of 10% of the side would give 3 taps at 32 px and clip sigma 2.
    """

    def __init__(self, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0), kernel_size: int | None = None) -> None:
        _check_probability(p)
        if not 0.0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must satisfy 0 < low <= high, got {sigma}")
        if kernel_size is None:
            kernel_size = 2 * math.ceil(3 * sigma[1]) + 1
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.p, self.sigma, self.kernel_size = p, tuple(sigma), kernel_size

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x)
        b = x.shape[0]
        blur = (torch.rand(b, generator=generator) < self.p).nonzero().squeeze(1)  # host: no device sync
        sigma = _uniform(b, self.sigma[0], self.sigma[1], generator)
        if blur.numel() == 0:
            return x
        out = x.clone()
        on_device = _on(x, blur)
        out[on_device] = _gaussian_blur(x[on_device], sigma[blur], self.kernel_size)
        return out
