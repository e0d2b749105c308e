"""In-memory batch loader: uint8 images stay in one tensor and whole batches are augmented at once.

Replaces ``DataLoader`` + per-image PIL transforms for small-image datasets (CIFAR-LT) that fit in memory.
Epoch order and augmentation randomness depend only on (seed, epoch, rank), so resuming at an epoch
boundary reproduces the same batches without saving any generator state. On an accelerator the uint8 array is
copied to its memory once, and every batch is gathered and augmented there: the host only draws the random
parameters (see ``ltzoo.augment._batch``), so the same seed gives the same batches on every device.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ltzoo.data.batch_transforms import BatchTransform

__all__ = ["to_channels_last", "ArrayLoader", "Batch", "BatchedDataLoader", "image_loader", "with_transform"]


class Batch(NamedTuple):
    """One batch: transformed ``images`` (a tensor or one tensor per view), int64 ``labels`` and dataset ``indices``."""

    images: Tensor | tuple[Tensor, ...]
    labels: Tensor
    indices: Tensor


def _as_nchw_uint8(images: Tensor | np.ndarray) -> Tensor:
    """Return images as a contiguous uint8 (N, C, H, W) tensor; numpy input is (N, H, W, C)."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"numpy images must be (N, H, W, C), got shape {images.shape}")
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 with 4 dimensions, got {images.dtype} {tuple(images.shape)}")
    return images.contiguous()


def _as_labels(labels: Tensor | np.ndarray | list[int], count: int) -> Tensor:
    """Return labels as a 1-D int64 tensor of length ``count``."""
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
    if labels.ndim != 1 or labels.shape[0] != count:
        raise ValueError(f"labels must be 1-D with {count} entries, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    return labels.to(torch.int64)


def to_channels_last(images: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """Give every 4-D tensor of a batch (or of each view) channels_last memory format."""
    if isinstance(images, tuple):
        return tuple(to_channels_last(view) for view in images)
    return images.contiguous(memory_format=torch.channels_last) if images.ndim == 4 else images


class ArrayLoader:
    """Iterate over augmented batches of an in-memory uint8 image array, optionally split across ranks.

    ``batch_size`` is PER RANK; the global batch is ``batch_size * world_size``. Each epoch's index order is the
    sampler's order, or ``torch.randperm`` seeded with ``seed + epoch`` (as ``DistributedSampler``); it is padded
    by repetition (``drop_last=False``) or truncated (``drop_last=True``) to a multiple of ``world_size`` and
    rank r takes ``order[r::world_size]``, so every rank gets the same number of batches. ``drop_last`` also drops
    a rank's final incomplete batch. The augmentation generator is seeded from (seed, epoch, rank) at the start of
    every pass. Call ``set_epoch`` before each epoch; the loader never advances the epoch itself. ``device`` holds
    the images, labels and every batch (the training device; the CPU by default).
    """

    def __init__(
        self,
        images: Tensor | np.ndarray,
        labels: Tensor | np.ndarray | list[int],
        batch_size: int,
        transform: BatchTransform,
        sampler: Sampler[int] | None = None,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got {rank=}, {world_size=}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.device = torch.device(device)
        self.images = _as_nchw_uint8(images).to(self.device)
        self.labels = _as_labels(labels, self.images.shape[0]).to(self.device)
        self.batch_size, self.transform, self.sampler = batch_size, transform, sampler
        self.drop_last, self.seed, self.rank, self.world_size = drop_last, seed, rank, world_size
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentations the next iteration produces (and tell the sampler)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _order_length(self) -> int:
        """Number of indices in one epoch's order before the split across ranks."""
        return len(self.sampler) if self.sampler is not None else self.images.shape[0]

    def _samples_per_rank(self) -> int:
        """Samples each rank sees per epoch, as ``DistributedSampler`` computes it."""
        if self.drop_last:
            return self._order_length() // self.world_size
        return math.ceil(self._order_length() / self.world_size)

    def __len__(self) -> int:
        samples = self._samples_per_rank()
        return samples // self.batch_size if self.drop_last else math.ceil(samples / self.batch_size)

    def _epoch_order(self) -> Tensor:
        """The epoch's dataset indices, identical on every rank."""
        if self.sampler is not None:
            return torch.as_tensor(list(self.sampler), dtype=torch.int64)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.images.shape[0], generator=generator)

    def rank_indices(self) -> Tensor:
        """This rank's dataset indices for the current epoch, in iteration order."""
        order = self._epoch_order()
        if order.numel() == 0:
            return order
        total = self._samples_per_rank() * self.world_size
        order = order.repeat(math.ceil(total / order.numel()))[:total]
        return order[self.rank :: self.world_size]

    def _augmentation_generator(self) -> torch.Generator:
        """A generator seeded from (seed, epoch, rank), fresh for every pass over the epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def __iter__(self) -> Iterator[Batch]:
        indices = self.rank_indices().to(self.device, non_blocking=True)  # one host-to-device copy per epoch
        generator = self._augmentation_generator()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch_indices = indices[start : start + self.batch_size]
            images = self.transform(self.images[batch_indices], generator)
            if self.channels_last:
                images = to_channels_last(images)
            yield Batch(images, self.labels[batch_indices], batch_indices)


def image_loader(dataset: Dataset, batch_size: int, num_workers: int, device: torch.device | str = "cpu",
                 sampler: Sampler[int] | None = None, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
    """A DataLoader for a per-image (decoded-file) dataset on the way to `device`: `num_workers` decoding processes
    that live across epochs (persistent: no re-spawn, no re-import per epoch) with 4 batches in flight each, and,
    for a CUDA device, batches in pinned memory so the copy to the device overlaps the step."""
    workers = num_workers > 0
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, pin_memory=torch.device(device).type == "cuda",
                      persistent_workers=workers, prefetch_factor=4 if workers else None)


def _to_device(images: Tensor | tuple[Tensor, ...], device: torch.device) -> Tensor | tuple[Tensor, ...]:
    """A batch (or each view of it) on `device`, copied without waiting where the host memory is pinned."""
    if isinstance(images, tuple):
        return tuple(_to_device(view, device) for view in images)
    return images.to(device, non_blocking=True)


class BatchedDataLoader:
    """A torch DataLoader over a per-image dataset whose (images, labels) come out as `Batch`es, like ArrayLoader's:
    multi-view items as a tuple of view batches, on `device`, channels_last on request. Its sampler must have
    `set_epoch`. Build the DataLoader with `image_loader` (workers, pinned memory)."""

    def __init__(self, loader: DataLoader, channels_last: bool = True, device: torch.device | str = "cpu") -> None:
        self.loader, self.channels_last, self.device = loader, channels_last, torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        self.loader.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            if isinstance(images, list):  # multi-view transforms collate to a list of batches
                images = tuple(images)
            images, labels = _to_device(images, self.device), labels.to(self.device, non_blocking=True)
            yield Batch(to_channels_last(images) if self.channels_last else images, labels,
                        torch.empty(0, dtype=torch.long, device=self.device))


def with_transform(dataset: Dataset, transform: Callable[[Any], Any]) -> Dataset:
    """A shallow copy of a per-image dataset (or of the dataset under a Subset) with another `transform`, for a
    second stream over the same images (e.g. a patch or probe view) that must not change the main loader's."""
    if isinstance(dataset, Subset):
        return Subset(with_transform(dataset.dataset, transform), dataset.indices)
    twin = copy.copy(dataset)
    twin.transform = transform
    return twin
