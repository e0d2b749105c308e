"""The paired-minority engine of CMO, SMCL and LSM (docs/methods/baselines.md §6): one background batch from the
ordinary loader, one minority batch from a class-aware stream, and a region of the background replaced by minority
content.

Pluggable parts (one `PairedMixing`): the minority sampler (`class_balanced`, `effective_number`, `reversed`, kinds of
`ltzoo.data.samplers`); the region (`random_box`, a
`saliency_box` centred on the peak of a `cam` / `gradcam` / `opencv_finegrained` map, or `patch_topk` from a
plugged-in `PatchRegion`); the box scope (`per_image`, `per_batch`); the fill (`paste`, `zero`); the label
weights (`area`, `saliency`). The plain configuration (random box, per batch, paste, area) is CMO.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..data.batch_transforms import BatchTransform
from ..data.loader import ArrayLoader, Batch, BatchedDataLoader, image_loader
from ..data.samplers import ClassAwareSampler, ShardedSampler, check_sampler_kind
from ..options import check_choice, check_number
from .boxes import box_masks, centred_boxes, kept_area, random_centres
from .saliency import model_saliency, normalize_maps, opencv_finegrained_saliency, peaks, to_uint8_images, upsample

MINOR_SAMPLERS = ("class_balanced", "effective_number", "reversed")
REGIONS = ("random_box", "saliency_box", "patch_topk")
SALIENCY_SOURCES = ("cam", "gradcam", "opencv_finegrained")
CAM_TARGETS = ("label", "pred")
BOX_SCOPES = ("per_image", "per_batch")
FILLS = ("paste", "zero")
LABEL_WEIGHTS = ("area", "saliency")
MINOR_SEED_OFFSET = 1  # the minority stream's seed is the run seed + 1: never the main loader's stream
_ENGINE_STREAM = 6  # SeedSequence key of the engine's own draws (gate coin, λ, random centres)


@dataclass(frozen=True)
class PairedMixing:
    """The paired-mixing options shared by the engine, the paired-minority base and CMO / SMCL / LSM, checked when
    built (no data needed): the minority sampler (β of the effective-number kind), the region and its saliency
    source, the box scope, the fill, the label weights, the gate (aug_start < e < E − aug_end, u < p_aug) and the
    Beta(box_beta, box_beta) of λ. The defaults are CMO's."""

    minor_sampler: str = "class_balanced"
    effnum_beta: float = 0.9999
    region: str = "random_box"
    saliency: str = "cam"
    cam_target: str = "label"
    box_scope: str = "per_batch"
    fill: str = "paste"
    label: str = "area"
    p_aug: float = 0.5
    aug_start: int = 3
    aug_end: int = 3
    box_beta: float = 1.0

    def __post_init__(self) -> None:
        check_sampler_kind(self.minor_sampler, "minor_sampler", MINOR_SAMPLERS)
        for option, allowed in (("region", REGIONS), ("saliency", SALIENCY_SOURCES), ("cam_target", CAM_TARGETS),
                                ("box_scope", BOX_SCOPES), ("fill", FILLS), ("label", LABEL_WEIGHTS)):
            check_choice(option, getattr(self, option), allowed)
        if self.label == "saliency" and self.saliency == "opencv_finegrained":
            raise ValueError("label 'saliency' weighs labels by the model's maps: use saliency 'cam' or 'gradcam'")
        check_number("effnum_beta", self.effnum_beta, 0, 1, high_open=True)
        check_number("p_aug", self.p_aug, 0, 1)
        check_number("box_beta", self.box_beta, 0, low_open=True)
        check_number("aug_start", self.aug_start, -1, integer=True)  # -1: mixing from epoch 0
        check_number("aug_end", self.aug_end, 0, integer=True)


class PatchRegion(Protocol):
    """A plugged-in region (e.g. LSM's top-K patches): given the batch pair and the batch's λ ~ Beta, return the
    boolean mask (B, 1, H, W) of pixels that take minority content, λ̂ (B,), the background label's weight, and
    the minority label's weight (B,) (1 − λ̂ when the two are normalised)."""

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor, minor_images: Tensor,
                 minor_labels: Tensor, lam: float) -> tuple[Tensor, Tensor, Tensor]: ...


@dataclass
class PairedBatch:
    """One augmented batch: x̃ = (1 − M) ⊙ x + M ⊙ fill, its two label sets and the per-image weight λ̂ of y."""

    images: Tensor  # x̃ (B, C, H, W)
    labels: Tensor  # y, the background labels
    minor_images: Tensor  # x' (B, C, H, W)
    minor_labels: Tensor  # y'
    lam: Tensor  # λ̂ (B,) float32: L = λ̂ ℓ(·, y) + λ̂' ℓ(·, y')
    mask: Tensor  # M (B, 1, H, W) bool, True where the minority content (or the zero fill) sits
    boxes: Tensor | None  # (B, 4) (x1, y1, x2, y2) for box regions, None for patches
    minor_lam: Tensor  # λ̂' (B,) float32, the weight of y': 1 − λ̂ unless a patch region weighs them apart


class PairedMinorityEngine:
    """Gate, minority stream and mixing of docs/methods/baselines.md §6, with pluggable parts (see the module
    docstring).

    Per step: `draw_minor(epoch)` gives the minority batch (every step of an eligible epoch, as CMO draws it);
    `gate(epoch)` is one coin per batch, open when aug_start < e < E − aug_end and u < p_aug; `mix` builds the
    `PairedBatch`. The engine's own draws (`rng`: the coin u, then λ, then random centres, in CMO's order) are
    seeded from (seed, epoch), identical on every rank, so all ranks take the same branch and resuming at an
    epoch boundary is exact.
    """

    def __init__(self, epochs: int, mixing: PairedMixing = PairedMixing(),
                 patch_region: PatchRegion | None = None) -> None:
        if (mixing.region == "patch_topk") != (patch_region is not None):
            raise ValueError("region 'patch_topk' needs a patch_region (e.g. ltzoo.augment.lsm.LSMPatchRegion), "
                             "and only it takes one")
        self.epochs, self.mixing, self.patch_region = epochs, mixing, patch_region
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self._seed = 0
        self._loader: Any = None
        self._minor_iter: Iterator[Batch] | None = None
        self.rng = np.random.default_rng()

    def bind_data(self, train_set: Any, transform: BatchTransform) -> None:
        """Build the minority stream over the training split (`ltzoo.methods.TrainSet`): |D| class-aware draws
        per epoch, the main loader's batch size, sharded by rank; `transform` augments CIFAR arrays."""
        seed = train_set.seed + MINOR_SEED_OFFSET
        sampler = ClassAwareSampler(train_set.labels, kind=self.mixing.minor_sampler, beta=self.mixing.effnum_beta,
                                    seed=seed)
        self.mean, self.std, self._seed = tuple(train_set.mean), tuple(train_set.std), train_set.seed
        if train_set.images is not None:
            self._loader = ArrayLoader(train_set.images, train_set.labels, train_set.batch_size, transform,
                                       sampler=sampler, seed=seed, rank=train_set.rank,
                                       world_size=train_set.world_size, channels_last=train_set.channels_last,
                                       device=train_set.device)
        else:
            loader = image_loader(train_set.dataset, train_set.batch_size, train_set.num_workers, train_set.device,
                                  sampler=ShardedSampler(sampler, train_set.rank, train_set.world_size))
            self._loader = BatchedDataLoader(loader, train_set.channels_last, train_set.device)

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the minority stream and the engine's draws for `epoch` (call at every epoch start)."""
        if self._loader is None:
            raise RuntimeError("PairedMinorityEngine.bind_data(train_set, transform) must run before training")
        self._loader.set_epoch(epoch)
        self._minor_iter = None
        self.rng = np.random.default_rng(np.random.SeedSequence([self._seed, epoch, _ENGINE_STREAM]))

    def eligible(self, epoch: int) -> bool:
        """Whether `epoch` (0-based) may augment: aug_start < e < E − aug_end."""
        return self.mixing.aug_start < epoch < self.epochs - self.mixing.aug_end

    def draw_minor(self, epoch: int, always: bool = False) -> Batch | None:
        """The next minority batch in an eligible epoch (or in any epoch with `always`), else None;
        the stream is re-created when exhausted."""
        if not (always or self.eligible(epoch)):
            return None
        if self._minor_iter is None:
            self._minor_iter = iter(self._loader)
        try:
            return next(self._minor_iter)
        except StopIteration:
            self._minor_iter = iter(self._loader)
            return next(self._minor_iter)

    def gate(self, epoch: int) -> bool:
        """One coin per batch of an eligible epoch: augment when u < p_aug, u ~ U(0, 1)."""
        return self.eligible(epoch) and bool(self.rng.random() < self.mixing.p_aug)

    def mix(self, model: nn.Module, images: Tensor, labels: Tensor, minor: Batch) -> PairedBatch:
        """Mix a background batch with the minority batch (truncated to its size). `model` is the unwrapped ltzoo
        model, read by the model saliency sources in a saliency pass (no gradients, BN statistics untouched)."""
        batch = labels.shape[0]
        minor_images = minor.images[:batch].to(images.device)
        minor_labels = minor.labels[:batch].to(labels.device)
        height, width = images.shape[-2:]
        lam = float(self.rng.beta(self.mixing.box_beta, self.mixing.box_beta))
        if self.mixing.region == "patch_topk":
            mask, lam_hat, minor_lam = self.patch_region(model, images, labels, minor_images, minor_labels, lam)
            boxes = None
        else:
            centres = self._box_centres(model, images, labels).to(images.device, non_blocking=True)  # host-drawn
            boxes = centred_boxes(centres, height, width, lam)
            if self.mixing.box_scope == "per_batch":
                boxes = boxes[:1].expand(batch, 4)
            mask = box_masks(boxes, height, width)
            lam_hat = kept_area(boxes, height, width)
            if self.mixing.label == "saliency":
                lam_hat = self._saliency_label_weight(model, images, labels, minor_images, minor_labels, mask, lam_hat)
            minor_lam = 1.0 - lam_hat
        fill = minor_images if self.mixing.fill == "paste" else torch.zeros_like(images)
        mixed = torch.where(mask, fill, images)
        return PairedBatch(mixed, labels, minor_images, minor_labels, lam_hat.to(images.device), mask, boxes,
                           minor_lam.to(images.device))

    def _box_centres(self, model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        """Box centres (row, col): uniform (one per batch or per image), or the peaks of the saliency maps."""
        height, width = images.shape[-2:]
        if self.mixing.region == "random_box":
            count = 1 if self.mixing.box_scope == "per_batch" else labels.shape[0]
            return random_centres(count, height, width, self.rng)
        return peaks(self.saliency_maps(model, images, labels))

    def saliency_maps(self, model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
        """The engine's saliency source on a background batch, at input resolution (B, H, W)."""
        if self.mixing.saliency == "opencv_finegrained":
            return opencv_finegrained_saliency(to_uint8_images(images, self.mean, self.std))
        maps = model_saliency(model, images, labels, self.mixing.saliency, self.mixing.cam_target)
        return upsample(maps, tuple(images.shape[-2:]))

    def _saliency_label_weight(self, model: nn.Module, images: Tensor, labels: Tensor, minor_images: Tensor,
                               minor_labels: Tensor, mask: Tensor, area: Tensor, eps: float = 1e-8) -> Tensor:
        """λ̂ = ρ/(ρ + ρ'), ρ = 1 − Σ_M S (background saliency kept), ρ' = Σ_M S' (minority saliency pasted);
        S, S' the `sum`-normalised own-label maps (docs/methods/baselines.md §10); the area weight where ρ + ρ' < ε."""
        both = torch.cat((images, minor_images))
        maps = model_saliency(model, both, torch.cat((labels, minor_labels)), self.mixing.saliency, "label")
        shares = normalize_maps(upsample(maps, tuple(images.shape[-2:])), "sum")
        inside = mask.squeeze(1).float()
        kept = 1.0 - (shares[: labels.shape[0]] * inside).flatten(1).sum(1)
        pasted = (shares[labels.shape[0]:] * inside).flatten(1).sum(1)
        total = kept + pasted
        return torch.where(total > eps, kept / total.clamp_min(eps), area.to(total))


__all__: list[str] = [
    "BOX_SCOPES", "CAM_TARGETS", "FILLS", "LABEL_WEIGHTS", "MINOR_SAMPLERS", "REGIONS", "SALIENCY_SOURCES",
    "PairedBatch", "PairedMinorityEngine", "PairedMixing", "PatchRegion",
]
