"""Batched image augmentations with independent random parameters per image.

Every transform is a callable ``t(x, generator)`` on a batch ``x`` of shape (B, C, H, W) that draws all of its
randomness from ``generator``, so a whole batch is augmented by a few tensor ops instead of B PIL calls.
Geometric and colour transforms take and return uint8; ``Normalize`` turns uint8 into normalised float32.
Blends truncate to uint8 as torchvision's tensor kernels and PIL do; resampling kernels round to nearest.

Device placement: the pixels stay on the batch's device (the training accelerator, or the CPU), and every tensor a
transform builds for them is created there (a constant copied from the host would wait for the device's queue).
The random parameters (a few numbers per image) are drawn on the host from a CPU ``generator`` and sent to the
device without waiting (``_on``): the same seed gives the same augmentation on every device, choosing which images
an op applies to (AutoAugment's sub-policies, the colour ops' random order) needs no device-to-host copy, and on
CPU the results are bitwise those of the host-only code. One known wait remains on CUDA: torchvision's affine
kernels (AutoAugment's shear, translate, rotate) copy their matrix to the device blocking, once per op group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "AutoAugmentCIFAR10",
    "BatchTransform",
    "ColorJitter",
    "Compose",
    "GaussianBlur",
    "MultiView",
    "Normalize",
    "RandAugment",
    "RandomCropFlip",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "cifar_autoaugment_transform",
    "cifar_contrastive_transform",
    "cifar_eval_transform",
    "cifar_train_transform",
    "resized_crop",
    "sample_resized_crop_boxes",
]


BatchTransform = Callable[[Tensor, torch.Generator], Tensor | tuple[Tensor, ...]]


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


def _blend(image: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """torchvision's uint8 blend ``factor * image + (1 - factor) * degenerate`` with one factor per image."""
    f = _on(image, factor.to(torch.float32)).view(-1, 1, 1, 1)
    return (image.float() * f + degenerate.float() * (1.0 - f)).clamp_(0, 255).to(torch.uint8)


def _rgb_to_gray(x: Tensor) -> Tensor:
    """torchvision's uint8 luma (0.2989 R + 0.587 G + 0.114 B, truncated), one channel."""
    return TF.rgb_to_grayscale(x, num_output_channels=1)


def _adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Scale every image by its own brightness factor."""
    return _blend(x, torch.zeros_like(x), factor)


def _adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its mean luma by its own contrast factor."""
    mean = _rgb_to_gray(x).float().mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def _adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its grayscale version by its own saturation factor."""
    return _blend(x, _rgb_to_gray(x), factor)


def _adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Blend every image with its PIL-style smoothed version by its own sharpness factor."""
    return _blend(x, TF.adjust_sharpness(x, 0.0), factor)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
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


class Compose:
    """Apply batch transforms one after another, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x


class MultiView:
    """Apply several view pipelines to the same batch and return one tensor per view (e.g. BCL's three views)."""

    def __init__(self, views: Sequence[BatchTransform]) -> None:
        if len(views) == 0:
            raise ValueError("MultiView needs at least one view")
        self.views = tuple(views)

    def __call__(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, ...]:
        return tuple(view(x, generator) for view in self.views)


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
            (_adjust_brightness, max(0.0, 1.0 - brightness), 1.0 + brightness),
            (_adjust_contrast, max(0.0, 1.0 - contrast), 1.0 + contrast),
            (_adjust_saturation, max(0.0, 1.0 - saturation), 1.0 + saturation),
            (_adjust_hue, -hue, hue),
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


_NEAREST = InterpolationMode.NEAREST

# torchvision ``AutoAugment(AutoAugmentPolicy.CIFAR10)``: 25 sub-policies of (op, probability, magnitude bin).
_CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


def _autoaugment_magnitude(op: str, magnitude_bin: int, height: int, width: int) -> float:
    """Unsigned magnitude of bin ``magnitude_bin`` of 10, as torchvision ``AutoAugment._AUGMENTATION_SPACE``."""
    if op in ("ShearX", "ShearY"):
        bins = torch.linspace(0.0, 0.3, 10)
    elif op == "TranslateX":
        bins = torch.linspace(0.0, 150.0 / 331.0 * width, 10)
    elif op == "TranslateY":
        bins = torch.linspace(0.0, 150.0 / 331.0 * height, 10)
    elif op == "Rotate":
        bins = torch.linspace(0.0, 30.0, 10)
    elif op in ("Brightness", "Color", "Contrast", "Sharpness"):
        bins = torch.linspace(0.0, 0.9, 10)
    elif op == "Posterize":
        bins = (8 - (torch.arange(10) / ((10 - 1) / 4))).round().int()
    elif op == "Solarize":
        bins = torch.linspace(1.0, 0.0, 10)
    else:
        raise ValueError(f"AutoAugment op {op!r} has no magnitude")
    return float(bins[magnitude_bin])


# Each AutoAugment op with torchvision's arguments (``AutoAugment._apply_image_or_video_transform``, NEAREST).
_AUTOAUGMENT_OPS: dict[str, Callable[[Tensor, float, list[float]], Tensor]] = {
    "ShearX": lambda x, m, fill: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(m)), 0.0],
        interpolation=_NEAREST, fill=fill, center=[0, 0],
    ),
    "ShearY": lambda x, m, fill: TF.affine(
        x, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, math.degrees(math.atan(m))],
        interpolation=_NEAREST, fill=fill, center=[0, 0],
    ),
    "TranslateX": lambda x, m, fill: TF.affine(
        x, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST, fill=fill
    ),
    "TranslateY": lambda x, m, fill: TF.affine(
        x, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST, fill=fill
    ),
    "Rotate": lambda x, m, fill: TF.rotate(x, angle=m, interpolation=_NEAREST, fill=fill),
    "Brightness": lambda x, m, fill: TF.adjust_brightness(x, brightness_factor=1.0 + m),
    "Color": lambda x, m, fill: TF.adjust_saturation(x, saturation_factor=1.0 + m),
    "Contrast": lambda x, m, fill: TF.adjust_contrast(x, contrast_factor=1.0 + m),
    "Sharpness": lambda x, m, fill: TF.adjust_sharpness(x, sharpness_factor=1.0 + m),
    "Posterize": lambda x, m, fill: TF.posterize(x, bits=int(m)),
    "Solarize": lambda x, m, fill: TF.solarize(x, threshold=255.0 * m),
    "AutoContrast": lambda x, m, fill: TF.autocontrast(x),
    "Equalize": lambda x, m, fill: TF.equalize(x),
    "Invert": lambda x, m, fill: TF.invert(x),
}
_AUTOAUGMENT_SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                                 "Contrast", "Sharpness"})


class AutoAugmentCIFAR10:
    """torchvision's AutoAugment CIFAR-10 policy with its own sub-policy, coin flips and signs per image.

    Images that share an (op, magnitude) at a stage are augmented together by the torchvision v2 kernel, so
    each image gets exactly what torchvision ``AutoAugment(AutoAugmentPolicy.CIFAR10, fill=fill)`` would do.
    """

    def __init__(self, fill: float | Sequence[float] = 128) -> None:
        self.fill = [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
        names = sorted(_AUTOAUGMENT_OPS)
        self._op_names = names
        self._op_index = torch.tensor([[names.index(op) for op, _, _ in sub] for sub in _CIFAR10_POLICY])
        self._probability = torch.tensor([[p for _, p, _ in sub] for sub in _CIFAR10_POLICY], dtype=torch.float64)
        self._bin = torch.tensor([[-1 if m is None else m for _, _, m in sub] for sub in _CIFAR10_POLICY])
        self._signed = torch.tensor([[op in _AUTOAUGMENT_SIGNED for op, _, _ in sub] for sub in _CIFAR10_POLICY])

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x, channels=3)
        b, _, h, w = x.shape
        policy = torch.randint(len(_CIFAR10_POLICY), (b,), generator=generator)
        coin = torch.rand(b, 2, generator=generator, dtype=torch.float64)
        negate = torch.rand(b, 2, generator=generator) <= 0.5
        out = x.clone()
        for stage in range(2):
            active = coin[:, stage] <= self._probability[policy, stage]
            negated = negate[:, stage] & self._signed[policy, stage]
            key = torch.stack((self._op_index[policy, stage], self._bin[policy, stage], negated.long()), dim=1)
            images = active.nonzero().squeeze(1)
            groups, group_of = torch.unique(key[images], dim=0, return_inverse=True)
            for group, (op_index, magnitude_bin, negated) in enumerate(groups.tolist()):
                op = self._op_names[op_index]
                magnitude = 0.0 if magnitude_bin < 0 else _autoaugment_magnitude(op, magnitude_bin, h, w)
                members = _on(x, images[group_of == group])  # grouped on the host: no device sync
                out[members] = _AUTOAUGMENT_OPS[op](out[members], -magnitude if negated else magnitude, self.fill)
        return out


def _affine(x: Tensor, matrix: Tensor, fill: Tensor) -> Tensor:
    """Bilinear per-image affine warp; ``matrix`` (n, 2, 3) maps output to input pixel coordinates as PIL's AFFINE.

    Coordinates are continuous with pixel centres at +0.5; samples outside the image take ``fill``.
    """
    n, c, h, w = x.shape
    device = x.device
    ys, xs = torch.meshgrid(torch.arange(h, device=device) + 0.5, torch.arange(w, device=device) + 0.5, indexing="ij")
    points = torch.stack((xs, ys, torch.ones_like(xs)), dim=-1).view(1, h * w, 3)
    source = points @ _on(x, matrix.to(torch.float32)).transpose(1, 2)
    grid = (torch.stack((source[..., 0] / w, source[..., 1] / h), dim=-1) * 2.0 - 1.0).view(n, h, w, 2)
    with_mask = torch.cat((x.float(), torch.ones(n, 1, h, w, device=device)), dim=1)
    sampled = nnf.grid_sample(with_mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    image, coverage = sampled[:, :c], sampled[:, c:]
    return _round_to_uint8(image + (1.0 - coverage) * _on(x, fill).view(1, c, 1, 1))


def _translation_matrix(dx: Tensor, dy: Tensor) -> Tensor:
    """Per-image output-to-input matrices of a shift by (dx, dy) pixels, as PIL's AFFINE (1, 0, dx, 0, 1, dy)."""
    matrix = torch.zeros(dx.shape[0], 2, 3, dtype=torch.float64)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1.0
    matrix[:, 0, 2], matrix[:, 1, 2] = dx, dy
    return matrix


def _shear_matrix(factor: Tensor, axis: int) -> Tensor:
    """Per-image output-to-input matrices of PIL's shear: (1, f, 0, 0, 1, 0) for x, (1, 0, 0, f, 1, 0) for y."""
    matrix = torch.zeros(factor.shape[0], 2, 3, dtype=torch.float64)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1.0
    matrix[:, axis, 1 - axis] = factor
    return matrix


def _rotation_matrix(degrees: Tensor, height: int, width: int) -> Tensor:
    """Per-image output-to-input matrices of PIL's ``Image.rotate`` (counter-clockwise about the centre)."""
    angle = -torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    matrix = torch.empty(degrees.shape[0], 2, 3, dtype=torch.float64)
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2] = cos, sin, cx - cos * cx - sin * cy
    matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2] = -sin, cos, cy + sin * cx - cos * cy
    return matrix


def _solarize(x: Tensor, threshold: Tensor) -> Tensor:
    """Invert the pixels at or above each image's threshold (PIL ``ImageOps.solarize``)."""
    return torch.where(x.long() >= _on(x, threshold).view(-1, 1, 1, 1), 255 - x, x)


def _solarize_add(x: Tensor, add: Tensor) -> Tensor:
    """Add each image's offset to pixels below 128, saturating at 255 (timm ``solarize_add``)."""
    shifted = (x.long() + _on(x, add).view(-1, 1, 1, 1)).clamp_(max=255).to(torch.uint8)
    return torch.where(x < 128, shifted, x)


def _posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep each image's ``bits`` most significant bits per channel (PIL ``ImageOps.posterize``)."""
    mask = ((255 << (8 - bits.clamp(0, 8))) & 255).to(torch.uint8)
    return x & _on(x, mask).view(-1, 1, 1, 1)


def _enhance_factor(level: Tensor) -> Tensor:
    """timm ``_enhance_level_to_arg``: level 0..10 to a blend factor 0.1..1.9."""
    return level / 10.0 * 1.8 + 0.1


# timm ``_RAND_TRANSFORMS`` (rand-*, not "increasing"): (images, level in [0, 10], random sign, fill) -> images.
_RAND_AUGMENT_OPS: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "AutoContrast": lambda x, level, sign, fill: TF.autocontrast(x),
    "Equalize": lambda x, level, sign, fill: TF.equalize(x),
    "Invert": lambda x, level, sign, fill: TF.invert(x),
    "Rotate": lambda x, level, sign, fill: _affine(
        x, _rotation_matrix(sign * level / 10.0 * 30.0, *x.shape[-2:]), fill
    ),
    "Posterize": lambda x, level, sign, fill: _posterize(x, (level / 10.0 * 4).long()),
    "Solarize": lambda x, level, sign, fill: _solarize(x, (level / 10.0 * 256).long().clamp(max=256)),
    "SolarizeAdd": lambda x, level, sign, fill: _solarize_add(x, (level / 10.0 * 110).long().clamp(max=128)),
    "Color": lambda x, level, sign, fill: _adjust_saturation(x, _enhance_factor(level)),
    "Contrast": lambda x, level, sign, fill: _adjust_contrast(x, _enhance_factor(level)),
    "Brightness": lambda x, level, sign, fill: _adjust_brightness(x, _enhance_factor(level)),
    "Sharpness": lambda x, level, sign, fill: _adjust_sharpness(x, _enhance_factor(level)),
    "ShearX": lambda x, level, sign, fill: _affine(x, _shear_matrix(sign * level / 10.0 * 0.3, axis=0), fill),
    "ShearY": lambda x, level, sign, fill: _affine(x, _shear_matrix(sign * level / 10.0 * 0.3, axis=1), fill),
    "TranslateXRel": lambda x, level, sign, fill: _affine(
        x, _translation_matrix(sign * level / 10.0 * 0.45 * x.shape[-1], torch.zeros_like(level)), fill
    ),
    "TranslateYRel": lambda x, level, sign, fill: _affine(
        x, _translation_matrix(torch.zeros_like(level), sign * level / 10.0 * 0.45 * x.shape[-2]), fill
    ),
}


class RandAugment:
    """timm ``rand-n{num_ops}-m{magnitude}-mstd{magnitude_std}`` with its own ops and magnitudes per image.

    Pool: timm's 15 ``_RAND_TRANSFORMS`` (AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd,
    Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel, TranslateYRel) with timm's level-to-argument
    rules. Each image draws ``num_ops`` ops with replacement, applies each with probability ``p`` (timm: 0.5), with
    magnitude ~ N(magnitude, magnitude_std) clipped to [0, 10] and a random sign for geometric ops. Differences from
    timm's PIL ops: geometric ops always use bilinear interpolation (timm picks bilinear or bicubic at random) and
    the contrast op blends with the float mean luma (PIL rounds it). ``fill`` is timm's default grey 128; BCL's
    recipe passes the dataset mean times 255 instead.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 10.0,
        magnitude_std: float = 0.5,
        p: float = 0.5,
        fill: float | Sequence[float] = 128,
    ) -> None:
        if num_ops < 0:
            raise ValueError(f"num_ops must be non-negative, got {num_ops}")
        if not 0.0 <= magnitude <= 10.0 or magnitude_std < 0:
            raise ValueError(f"need 0 <= magnitude <= 10 and magnitude_std >= 0, got {magnitude}, {magnitude_std}")
        _check_probability(p)
        self.num_ops, self.magnitude, self.magnitude_std, self.p = num_ops, magnitude, magnitude_std, p
        self.fill = torch.tensor([fill] * 3 if isinstance(fill, (int, float)) else list(fill), dtype=torch.float32)
        self._op_names = list(_RAND_AUGMENT_OPS)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        _check_uint8_batch(x, channels=self.fill.shape[0])
        b = x.shape[0]
        out = x.clone()
        for _ in range(self.num_ops):
            op_index = torch.randint(len(self._op_names), (b,), generator=generator)
            active = torch.rand(b, generator=generator) < self.p
            level = (torch.randn(b, generator=generator, dtype=torch.float64) * self.magnitude_std + self.magnitude)
            level = level.clamp(0.0, 10.0)
            sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
            for index in op_index[active].unique().tolist():
                members = (active & (op_index == index)).nonzero().squeeze(1)  # host: no device sync
                op = _RAND_AUGMENT_OPS[self._op_names[index]]
                on_device = _on(x, members)
                out[on_device] = op(out[on_device], level[members], sign[members], self.fill)
        return out


def cifar_train_transform(
    mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD
) -> Compose:
    """CIFAR training views: RandomCrop(32, padding=4) + horizontal flip + Normalize
    (docs/methods/baselines.md §1.1)."""
    return Compose([RandomCropFlip(32, padding=4), Normalize(mean, std)])


def cifar_eval_transform(mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> Compose:
    """CIFAR evaluation: Normalize only."""
    return Compose([Normalize(mean, std)])


def cifar_contrastive_transform(
    mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD
) -> Compose:
    """ConCutMix CIFAR contrastive view (docs/methods/concutmix.md §3.5): crop 0.2-1, flip, jitter, grayscale, blur."""
    return Compose(
        [
            RandomResizedCrop(32, scale=(0.2, 1.0)),
            RandomHorizontalFlip(0.5),
            ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
            RandomGrayscale(0.2),
            GaussianBlur(0.5, sigma=(0.1, 2.0)),
            Normalize(mean, std),
        ]
    )


def cifar_autoaugment_transform(
    mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD
) -> Compose:
    """ConCutMix CIFAR classification view v0 (docs/methods/concutmix.md §3.5): crop + flip + AutoAugment CIFAR-10 (fill
    128) + Normalize."""
    return Compose([RandomCropFlip(32, padding=4), AutoAugmentCIFAR10(fill=128), Normalize(mean, std)])
