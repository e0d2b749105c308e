"""DSCL's views on batches (docs/methods/dscl.md §2.2, CIFAR §5): two global crops, L patch boxes drawn on the first,
the patches, the query / key / patch colour pipelines, and the linear probe's view.

The geometry (`GlobalPatchCrops`) comes first and is exact: g1 is flipped before its boxes are drawn, the boxes are
(x1, y1, x2, y2) in g1's pixel coordinates, and each patch is g1 cropped at its box and resized. The query view is
g1 under colour ops only, so the boxes also locate the patches on the query's feature map (for
`torchvision.ops.roi_align` with spatial_scale = map size / view size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ..data.batch_transforms import BatchTransform, Compose, Normalize
from .blur import GaussianBlur
from .colour import ColorJitter, RandomGrayscale
from .crops import RandomHorizontalFlip, RandomResizedCrop, resized_crop, sample_resized_crop_boxes

RATIO = (3.0 / 4.0, 4.0 / 3.0)


class CropSet(NamedTuple):
    """The geometric views of a batch, all uint8: g1, g2 (B, C, S, S), patches (B, L, C, P, P), boxes (B, L, 4)
    float32 (x1, y1, x2, y2) in g1 pixels."""

    g1: Tensor
    g2: Tensor
    patches: Tensor
    boxes: Tensor


class GlobalPatchCrops:
    """Two RandomResizedCrops of each image to `size` (torchvision's sampler, `global_scale`, `ratio`); g1 flipped
    with probability 0.5; then `num_patches` boxes per image drawn on g1 by the same sampler with `patch_scale`, and
    g1 cropped at each box and resized to `patch_size` (antialiased bilinear, as PIL)."""

    def __init__(self, size: int, global_scale: Sequence[float], num_patches: int, patch_size: int,
                 patch_scale: Sequence[float], ratio: Sequence[float] = RATIO) -> None:
        if num_patches < 1 or patch_size < 1 or size < 1:
            raise ValueError(f"need size, num_patches, patch_size >= 1, got {size}, {num_patches}, {patch_size}")
        self.size, self.num_patches, self.patch_size = size, num_patches, patch_size
        self.global_scale, self.patch_scale = tuple(global_scale), tuple(patch_scale)
        self.ratio = tuple(ratio)
        self.flip = RandomHorizontalFlip(0.5)

    def _global_crop(self, x: Tensor, generator: torch.Generator) -> Tensor:
        boxes = sample_resized_crop_boxes(x.shape[0], x.shape[-2], x.shape[-1], self.global_scale, self.ratio,
                                           generator)
        return resized_crop(x, *boxes, size=self.size)

    def __call__(self, x: Tensor, generator: torch.Generator) -> CropSet:
        batch, channels, count = x.shape[0], x.shape[1], self.num_patches
        g1 = self.flip(self._global_crop(x, generator), generator)
        g2 = self._global_crop(x, generator)
        top, left, height, width = sample_resized_crop_boxes(batch * count, self.size, self.size, self.patch_scale,
                                                              self.ratio, generator)
        patches = resized_crop(g1.repeat_interleave(count, dim=0), top, left, height, width, size=self.patch_size)
        boxes = torch.stack([left, top, left + width, top + height], dim=1).to(torch.float32)
        boxes = boxes.to(x.device, non_blocking=True)  # drawn on the host, used beside the pixels
        return CropSet(g1, g2, patches.view(batch, count, channels, self.patch_size, self.patch_size),
                       boxes.view(batch, count, 4))


class DSCLViews:
    """A batch transform giving DSCL's item (x^q, x^k, patches, boxes): the query pipeline on g1, the key pipeline
    on g2 and the patch pipeline on every patch independently; patches come out (B, L, C, P, P)."""

    def __init__(self, crops: GlobalPatchCrops, query: BatchTransform, key: BatchTransform,
                 patch: BatchTransform) -> None:
        self.crops, self.query, self.key, self.patch = crops, query, key, patch

    def __call__(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        crops = self.crops(x, generator)
        patches = self.patch(crops.patches.flatten(0, 1), generator).unflatten(0, crops.patches.shape[:2])
        return self.query(crops.g1, generator), self.key(crops.g2, generator), patches, crops.boxes


def dscl_views(mean: Sequence[float], std: Sequence[float], size: int, global_scale: Sequence[float],
               num_patches: int, patch_size: int, patch_scale: Sequence[float], blur: bool) -> DSCLViews:
    """The pipelines of §2.2 (ImageNet-LT, `blur=True`) and §5 (CIFAR-LT, `blur=False`):
    query = jitter(0.4, 0.4, 0.4, 0.1) p 0.8 → grayscale p 0.2 → [blur p 0.5]; key = jitter(0.4, 0.4, 0.4, 0)
    always → flip p 0.5; patch = flip p 0.5 → the query's colour ops; each then normalised."""
    def colour() -> list[BatchTransform]:
        ops: list[BatchTransform] = [ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), RandomGrayscale(0.2)]
        return ops + [GaussianBlur(0.5, sigma=(0.1, 2.0))] if blur else ops

    normalize = Normalize(mean, std)
    return DSCLViews(
        GlobalPatchCrops(size, global_scale, num_patches, patch_size, patch_scale),
        query=Compose([*colour(), normalize]),
        key=Compose([ColorJitter(0.4, 0.4, 0.4, 0.0), RandomHorizontalFlip(0.5), normalize]),
        patch=Compose([RandomHorizontalFlip(0.5), *colour(), normalize]),
    )


def dscl_probe_view(mean: Sequence[float], std: Sequence[float], size: int, crop_scale: Sequence[float],
                    blur: bool) -> Compose:
    """The probe's view (§3.4 / §5): RandomResizedCrop(size, crop_scale) → jitter(0.4, 0.4, 0.4, 0.1) p 0.8 →
    grayscale p 0.2 → [blur p 0.5] → flip → Normalize."""
    blurs: list[BatchTransform] = [GaussianBlur(0.5, sigma=(0.1, 2.0))] if blur else []
    return Compose([RandomResizedCrop(size, scale=tuple(crop_scale)), ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
                    RandomGrayscale(0.2), *blurs, RandomHorizontalFlip(0.5), Normalize(mean, std)])


class PerImageViews:
    """A batch transform applied to one PIL image (a DataLoader dataset's transform): the image becomes a batch of
    one, randomness comes from a generator seeded by torch's global RNG (seeded per worker), the batch dimension is
    dropped from the output (a tensor, or each view of a multi-view transform)."""

    def __init__(self, transform: BatchTransform) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> Tensor | tuple[Tensor, ...]:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        views = self.transform(TF.pil_to_tensor(image.convert("RGB"))[None], generator)
        return views[0] if isinstance(views, Tensor) else tuple(view[0] for view in views)
