"""Batched AutoAugment: torchvision's CIFAR-10 policy with its own sub-policy, coin flips and signs per image."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ._batch import _check_uint8_batch, _on

__all__ = ["AutoAugmentCIFAR10"]

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
