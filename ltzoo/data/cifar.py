"""CIFAR-10-LT and CIFAR-100-LT, built exactly as kaidic/LDAM-DRW and naver-ai/cmo do
(docs/methods/baselines.md §1.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ltzoo.benchmarks import BENCHMARKS
from ltzoo.data.sources import load_cifar

__all__ = [
    "CIFAR_MAX_PER_CLASS",
    "CIFAR_NUM_CLASSES",
    "CifarDataset",
    "LongTailedCifar",
    "cifar_lt",
    "img_num_per_cls",
    "long_tailed_indices",
]

# per CIFAR set a CIFAR-LT benchmark is drawn from: its classes and its images per class (ltzoo.benchmarks' rows)
CIFAR_NUM_CLASSES: dict[str, int] = {b.cifar: b.num_classes for b in BENCHMARKS.values() if b.kind == "cifar_lt"}
CIFAR_MAX_PER_CLASS: dict[str, int] = {b.cifar: b.max_per_class for b in BENCHMARKS.values() if b.kind == "cifar_lt"}

@dataclass
class LongTailedCifar:
    """A CIFAR-LT split: images (N, 32, 32, 3) uint8, labels int64, and the long-tailed TRAIN class counts.

    ``indices`` are the kept positions in the original training array (None for the balanced test split).
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    class_counts: np.ndarray
    class_names: list[str]
    indices: np.ndarray | None
    imb_factor: float
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def img_num_per_cls(n_max: int, num_classes: int, imb_factor: float) -> list[int]:
    """n_i = int(n_max · (1/IF)^(i/(C−1))) for i = 0 … C−1, in float64; class 0 is the largest."""
    if imb_factor <= 0:
        raise ValueError(f"imb_factor must be positive (it is the imbalance ratio n_max/n_min, e.g. 100), "
                         f"got {imb_factor}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    ratio = 1.0 / float(imb_factor)
    return [int(n_max * ratio ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def long_tailed_indices(labels: np.ndarray, num_classes: int, imb_factor: float, seed: int = 0) -> np.ndarray:
    """Kept original indices: for c = 0 … C−1, shuffle class c's ascending indices and keep the first n_c.

    One legacy ``np.random.RandomState(seed)`` serves all classes, and n_max = len(labels)/C, as in the
    reference, so the result is bit-identical to it.
    """
    labels = np.asarray(labels)
    counts = img_num_per_cls(len(labels) / num_classes, num_classes, imb_factor)
    rng = np.random.RandomState(seed)
    kept = []
    for cls, n_keep in enumerate(counts):
        idx = np.flatnonzero(labels == cls)
        if len(idx) < n_keep:
            raise ValueError(f"class {cls} has {len(idx)} images but imbalance factor {imb_factor} needs {n_keep}; "
                             f"long_tailed_indices expects a balanced set of {num_classes} classes")
        rng.shuffle(idx)
        kept.append(idx[:n_keep])
    return np.concatenate(kept).astype(np.int64)


def cifar_lt(dataset: str, split: str = "train", imb_factor: float = 100, seed: int = 0,
             root: str | Path | None = None, download: bool = False) -> LongTailedCifar:
    """CIFAR-10-LT / CIFAR-100-LT: the long-tailed train subset, or the full balanced test set.

    Both splits carry the long-tailed TRAIN ``class_counts`` for this imbalance factor, which is what
    many/medium/few evaluation needs.
    """
    if dataset not in CIFAR_NUM_CLASSES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(CIFAR_NUM_CLASSES)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    num_classes = CIFAR_NUM_CLASSES[dataset]
    n_max = CIFAR_MAX_PER_CLASS[dataset]
    train_counts = np.asarray(img_num_per_cls(n_max, num_classes, imb_factor), dtype=np.int64)
    arrays = load_cifar(dataset, train=split == "train", root=root, download=download)
    if split == "test":
        return LongTailedCifar(arrays.images, arrays.labels, num_classes, train_counts, arrays.class_names,
                               None, float(imb_factor), arrays.source)
    expected = n_max * num_classes
    if len(arrays.labels) != expected:
        raise ValueError(f"{dataset} training set from {arrays.source} has {len(arrays.labels)} images, but the "
                         f"long-tailed subset is drawn from the full {expected}-image set; point root (or "
                         f"LTZOO_DATA) at a complete copy")
    indices = long_tailed_indices(arrays.labels, num_classes, imb_factor, seed)
    return LongTailedCifar(arrays.images[indices], arrays.labels[indices], num_classes, train_counts,
                           arrays.class_names, indices, float(imb_factor),
                           f"{arrays.source}, long-tailed subset IF {imb_factor:g}, seed {seed}")


class CifarDataset(torch.utils.data.Dataset):
    """A torch Dataset over a ``LongTailedCifar``: item i is (transform(PIL image i), label i)."""

    def __init__(self, data: LongTailedCifar, transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.data = data
        self.transform = transform
        self.targets = data.labels
        self.class_counts = data.class_counts

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.data.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.data.labels[index])
