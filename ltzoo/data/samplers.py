"""Index samplers for long-tailed training: shuffled instances, class-aware re-sampling, and rank shards.

Every sampler is a ``torch.utils.data.Sampler[int]`` for a plain DataLoader, deterministic given
``(seed, epoch)``: each epoch draws from a fresh ``torch.Generator`` seeded from (seed, epoch, sampler type),
so resuming at an epoch boundary is exact without saving generator state. Call ``set_epoch`` as with
``DistributedSampler``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = [
    "SAMPLER_KINDS",
    "ClassAwareSampler",
    "EpochSampler",
    "InstanceSampler",
    "ShardedSampler",
    "check_sampler_kind",
    "class_probabilities",
]

SAMPLER_KINDS: tuple[str, ...] = ("instance", "class_balanced", "sqrt", "reversed", "effective_number")
# names these distributions had in the method modules before the kinds above were the only ones: an error names the
# kind that replaced them (configs and code use only SAMPLER_KINDS)
_RETIRED_KINDS: dict[str, str] = {
    "cmo_uniform": "class_balanced",
    "class_uniform": "class_balanced",
    "balance": "class_balanced",
    "effnum": "effective_number",
    "reverse": "reversed",
}

_INSTANCE_STREAM = 0
_CLASS_AWARE_STREAM = 1


def class_probabilities(class_counts: Sequence[int] | np.ndarray, kind: str, beta: float = 0.9999) -> np.ndarray:
    """Probability of drawing each class: instance ∝ n_k; class_balanced uniform; sqrt ∝ √n_k; reversed ∝ 1/n_k;
    effective_number ∝ 1/E_k with E_k = (1 − β^{n_k})/(1 − β). Classes with no images get 0.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or not (counts > 0).any():
        raise ValueError(f"class_counts must be a non-empty 1-D sequence of non-negative counts with at least one "
                         f"positive entry, got {np.asarray(class_counts)!r}")
    name = check_sampler_kind(kind)
    present = counts > 0
    n = counts[present]
    if name == "instance":
        weights = n
    elif name == "class_balanced":
        weights = np.ones_like(n)
    elif name == "sqrt":
        weights = np.sqrt(n)
    elif name == "reversed":
        weights = 1.0 / n
    else:  # effective_number
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1) for the effective-number sampler, got {beta}")
        weights = (1.0 - beta) / (1.0 - beta**n)
    probabilities = np.zeros_like(counts)
    probabilities[present] = weights / weights.sum()
    return probabilities


def check_sampler_kind(kind: str, option: str = "sampler kind", kinds: Sequence[str] = SAMPLER_KINDS) -> str:
    """`kind` if it is one of `kinds` (SAMPLER_KINDS or a method's subset of them), else a one-line error naming
    `option`, the choices and, for a retired name, the kind that replaced it."""
    if kind in kinds:
        return kind
    renamed = _RETIRED_KINDS.get(kind)
    if renamed is not None and renamed in kinds:
        raise ValueError(f"{option} {kind!r} is now called {renamed!r} (the sampler kinds of ltzoo.data.samplers)")
    raise ValueError(f"unknown {option} {kind!r}; choose one of {', '.join(kinds)}")


def _epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, epoch, stream), so different sampler types draw independently."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _check_non_negative_int(value: Any, name: str) -> int:
    """Return ``value`` as an int, or raise a clear error unless it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


class InstanceSampler(Sampler[int]):
    """The ordinary loader's order: a fresh random permutation of range(num_items) each epoch (or in order)."""

    def __init__(self, num_items: int, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.num_items = _check_non_negative_int(num_items, "num_items")
        self.shuffle = shuffle
        self.seed = _check_non_negative_int(seed, "seed")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration yields."""
        self.epoch = _check_non_negative_int(epoch, "epoch")

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_items))
        generator = _epoch_generator(self.seed, self.epoch, _INSTANCE_STREAM)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_items


class ClassAwareSampler(Sampler[int]):
    """Class-aware re-sampling with replacement: a class by ``class_probabilities(kind)``, then an image
    uniformly within it; ``num_samples`` draws per epoch (default: the dataset size).

    Drawn as torch's WeightedRandomSampler with per-image weight p_k/n_k (same distribution), the form
    CMO, SMCL and LSM describe; with ``kind="instance"`` it is uniform over images.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, kind: str = "class_balanced", beta: float = 0.9999,
                 num_samples: int | None = None, seed: int = 0) -> None:
        super().__init__()
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f"labels must be a non-empty 1-D array of non-negative integer class ids, got shape "
                             f"{labels.shape} and dtype {labels.dtype}")
        self.kind = kind
        self.class_counts = np.bincount(labels).astype(np.int64)
        self.class_probs = class_probabilities(self.class_counts, kind, beta)
        self.weights = torch.as_tensor(self.class_probs[labels] / self.class_counts[labels], dtype=torch.float64)
        self.num_samples = len(labels) if num_samples is None else _check_non_negative_int(num_samples, "num_samples")
        if self.num_samples == 0:
            raise ValueError("num_samples must be at least 1 (or None for one draw per image)")
        self.seed = _check_non_negative_int(seed, "seed")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws the next iteration yields."""
        self.epoch = _check_non_negative_int(epoch, "epoch")

    def __iter__(self) -> Iterator[int]:
        generator = _epoch_generator(self.seed, self.epoch, _CLASS_AWARE_STREAM)
        return iter(torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ShardedSampler(Sampler[int]):
    """Rank r's share ``order[r::world_size]`` of a sampler's epoch order, padded by repetition to a multiple of
    ``world_size`` as ArrayLoader pads, so every rank gets the same number of indices (DistributedSampler's rule,
    for a sampler that is not a plain shuffle)."""

    def __init__(self, sampler: EpochSampler, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got {rank=}, {world_size=}")
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.world_size)

    def __iter__(self) -> Iterator[int]:
        order = list(self.sampler)
        total = len(self) * self.world_size
        return iter((order * math.ceil(total / len(order)))[:total][self.rank::self.world_size])


class EpochSampler(Protocol):
    """A sampler whose order is fixed by ``set_epoch``, as ``InstanceSampler`` and ``ClassAwareSampler`` are."""

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...
