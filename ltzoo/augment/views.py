"""The training views of each recipe, composed from the batched augmentations (and, for per-image datasets,
torchvision's and timm's): the CIFAR crop + flip view, ConCutMix's AutoAugment and contrastive views, BCL's three views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.data.auto_augment import rand_augment_transform
from torch import Tensor
from torchvision import transforms

from ..benchmarks import CIFAR_MEAN, CIFAR_STD
from ..data.batch_transforms import BatchTransform, Compose, Normalize
from .autoaugment import AutoAugmentCIFAR10
from .blur import GaussianBlur
from .colour import ColorJitter, RandomGrayscale
from .crops import RandomCropFlip, RandomHorizontalFlip, RandomResizedCrop

__all__ = [
    "CL_VIEWS",
    "MultiImageView",
    "MultiView",
    "bcl_cifar_views",
    "bcl_image_views",
    "cifar_autoaugment_transform",
    "cifar_contrastive_transform",
    "cifar_train_transform",
]

# BCL's `cl_views` -> the two contrastive views (v1, v2) of docs/methods/concutmix.md §2.2
CL_VIEWS = {"sim-sim": ("sim", "sim"), "sim-rand": ("rand", "sim"), "rand-rand": ("rand", "rand")}


class MultiView:
    """Apply several view pipelines to the same batch and return one tensor per view (e.g. BCL's three views)."""

    def __init__(self, views: Sequence[BatchTransform]) -> None:
        if len(views) == 0:
            raise ValueError("MultiView needs at least one view")
        self.views = tuple(views)

    def __call__(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, ...]:
        return tuple(view(x, generator) for view in self.views)


class MultiImageView:
    """Per-image pipelines applied to one PIL image, one tensor per view (the DataLoader form of `MultiView`)."""

    def __init__(self, views: Sequence[transforms.Compose]) -> None:
        self.views = tuple(views)

    def __call__(self, image: Any) -> tuple[Tensor, ...]:
        return tuple(view(image) for view in self.views)


def cifar_train_transform(
    mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD
) -> Compose:
    """CIFAR training views: RandomCrop(32, padding=4) + horizontal flip + Normalize
    (docs/methods/baselines.md §1.1)."""
    return Compose([RandomCropFlip(32, padding=4), Normalize(mean, std)])


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


def bcl_cifar_views(mean: Sequence[float], std: Sequence[float]) -> MultiView:
    """BCL's CIFAR views (docs/methods/concutmix.md §3.5): v0 crop + flip + AutoAugment; v1, v2 the contrastive
    crop/jitter/grayscale/blur."""
    return MultiView([cifar_autoaugment_transform(mean, std), cifar_contrastive_transform(mean, std),
                      cifar_contrastive_transform(mean, std)])


def bcl_image_views(mean: Sequence[float], std: Sequence[float], size: int, cl_views: str,
                    randaugment_mean: Sequence[float]) -> MultiImageView:
    """BCL's ImageNet-scale views (docs/methods/concutmix.md §2.2) for a per-image dataset: [randncls, then the two
    views of `cl_views`].

    RandAugment fills with `randaugment_mean` x 255 (BCL's code: the ImageNet mean, on every benchmark)."""
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    crop_flip = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    rand_augment = rand_augment_transform(
        "rand-n2-m10-mstd0.5", {"translate_const": 100, "img_mean": tuple(round(255 * m) for m in randaugment_mean)})
    jitter = [transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
              transforms.RandomGrayscale(p=0.2)]
    views = {
        "randncls": transforms.Compose([*crop_flip, transforms.ColorJitter(0.4, 0.4, 0.4, 0.0), rand_augment,
                                        *normalize]),
        "sim": transforms.Compose([*crop_flip, *jitter, *normalize]),
        "rand": transforms.Compose([*crop_flip, *jitter, rand_augment, *normalize]),
    }
    first, second = CL_VIEWS[cl_views]
    return MultiImageView([views["randncls"], views[first], views[second]])
