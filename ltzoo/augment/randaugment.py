"""Batched RandAugment: timm's ``rand-*`` ops and level rules with their own ops and magnitudes per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ._batch import _check_probability, _check_uint8_batch, _on, _round_to_uint8
from .colour import adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness

__all__ = ["RandAugment"]


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
    "Color": lambda x, level, sign, fill: adjust_saturation(x, _enhance_factor(level)),
    "Contrast": lambda x, level, sign, fill: adjust_contrast(x, _enhance_factor(level)),
    "Brightness": lambda x, level, sign, fill: adjust_brightness(x, _enhance_factor(level)),
    "Sharpness": lambda x, level, sign, fill: adjust_sharpness(x, _enhance_factor(level)),
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
