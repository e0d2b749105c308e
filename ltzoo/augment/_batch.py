"""What every batched augmentation in ltzoo.augment shares: input checks, host-drawn random numbers, uint8 rounding.

Device placement: the pixels stay on the batch's device (the training accelerator, or the CPU), and every tensor a
transform builds for them is created there (a constant copied from the host would wait for the device's queue).
The random parameters (a few numbers per image) are drawn on the host from a CPU ``generator`` and sent to the
device without waiting (``_on``): the same seed gives the same augmentation on every device, choosing which images
an op applies to (AutoAugment's sub-policies, the colour ops' random order) needs no device-to-host copy, and on
CPU the results are bitwise those of the host-only code. One known wait remains on CUDA: torchvision's affine
kernels (AutoAugment's shear, translate, rotate) copy their matrix to the device blocking, once per op group.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_uint8_batch(x: Tensor, channels: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a uint8 (B, C, H, W) tensor, optionally with ``channels`` channels."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor batch, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got {x.shape[1]}")


def _check_probability(p: float, name: str = "p") -> None:
    """Raise unless ``p`` lies in [0, 1]."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """Draw ``n`` float64 samples from U[low, high)."""
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _randint(n: int, high: Tensor, generator: torch.Generator) -> Tensor:
    """Draw one integer uniformly from [0, high_i) per entry of the int64 tensor ``high``."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.minimum((u * high).long(), high - 1)


def _on(like: Tensor, values: Tensor) -> Tensor:
    """Host-drawn ``values`` on ``like``'s device (asynchronous host-to-device copy; the same tensor on the CPU)."""
    return values.to(like.device, non_blocking=True)


def _round_to_uint8(x: Tensor) -> Tensor:
    """Round a float tensor in the uint8 value range to the nearest integer and convert it to uint8."""
    return x.round().clamp_(0, 255).to(torch.uint8)
