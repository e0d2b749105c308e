"""A benchmark's evaluation set and training class counts, built from its row in `ltzoo.benchmarks`.

The one place both `ltzoo validate` and the training loop's per-epoch evaluation get their eval data from, so the two
measure the same images with the same transform: CIFAR-LT's balanced test set (or a held-out split of unused training
images) on the in-memory `ArrayLoader` in a fixed order, a large-scale benchmark's val/test list through a DataLoader
with the pretrained cfg's eval transform. Many/medium/few always use the TRAINING counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import SequentialSampler, Subset

from ltzoo.benchmarks import get_benchmark
from ltzoo.data.batch_transforms import cifar_eval_transform
from ltzoo.data.cifar import cifar_lt, img_num_per_cls, long_tailed_indices
from ltzoo.data.loader import ArrayLoader, image_loader
from ltzoo.data.sources import load_cifar
from ltzoo.data.splits import SplitFileDataset, find_split_list, read_split_list
from ltzoo.data.transforms import eval_transform_from_cfg

__all__ = ["EVAL_SPLITS", "HELDOUT_SEED", "EvalSet", "eval_set", "heldout_indices", "image_root",
           "train_class_counts"]

EVAL_SPLITS: tuple[str, ...] = ("test", "val", "heldout")
HELDOUT_SEED = 0


@dataclass(frozen=True)
class EvalSet:
    """One benchmark split ready to evaluate: its loader (yielding (images, labels) batches), the training class
    counts many/medium/few are grouped by, class names where known, a line saying where the data came from, and what
    identifies the data: the image and label arrays (CIFAR-LT) or the list file and image folder (split lists)."""

    loader: Iterable[Any]
    train_counts: np.ndarray
    class_names: list[str] | None
    source: str
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    list_file: Path | None = None
    image_root: Path | None = None


def heldout_indices(
    labels: np.ndarray, long_tailed: np.ndarray, per_class: int, seed: int = HELDOUT_SEED
) -> np.ndarray:
    """A held-out split of a CIFAR training set from the images NOT in the long-tailed subset ``long_tailed``: up to
    ``per_class`` of each class (fewer where fewer are left; none for a head class the subset keeps whole), drawn by
    shuffling each class's unused positions with one RandomState(seed). Ascending positions."""
    unused = np.ones(len(labels), dtype=bool)
    unused[long_tailed] = False
    rng = np.random.RandomState(seed)
    kept = []
    for cls in range(int(labels.max()) + 1):
        positions = np.flatnonzero(unused & (labels == cls))
        rng.shuffle(positions)
        kept.append(positions[:per_class])
    return np.sort(np.concatenate(kept)).astype(np.int64)


def train_class_counts(benchmark: str, imb_factor: float | None = None,
                       data_dir: str | Path | None = None) -> np.ndarray:
    """Training images per class: CIFAR-LT's from its imbalance factor (the profile its models were trained on), a
    large-scale benchmark's by counting its train list (found in ``data_dir``, $LTZOO_DATA or the shared data)."""
    row = get_benchmark(benchmark)
    if row.kind == "cifar_lt":
        if imb_factor is None:
            raise ValueError(f"{benchmark} needs the imbalance factor its model was trained with")
        return np.asarray(img_num_per_cls(row.max_per_class, row.num_classes, imb_factor))
    _, labels = read_split_list(find_split_list(benchmark, "train", data_dir), row.num_classes)
    return np.bincount(labels, minlength=row.num_classes)


def image_root(benchmark: str, data_dir: str | Path | None, option: str = "data_dir") -> Path:
    """The folder a benchmark's list paths are relative to: ``data_dir``, else $LTZOO_DATA; `option` is the name the
    user sets it by (``data_dir``, ``data.root``), for the error that says it is missing or not a folder."""
    root = data_dir or os.environ.get("LTZOO_DATA")
    if root is None:
        raise FileNotFoundError(f"{benchmark} needs {option} (or $LTZOO_DATA): the folder its split lists' image "
                                f"paths are relative to, e.g. {option}=/data/{get_benchmark(benchmark).folder}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{option}={path} is not a directory; it must hold the {benchmark} images")
    return path


def _cifar_set(benchmark: str, split: str, pretrained_cfg: dict[str, Any], imb_factor: float | None,
               data_dir: str | Path | None, batch_size: int, channels_last: bool) -> EvalSet:
    """The balanced CIFAR test set in a fixed order, or the held-out split, normalised with the cfg's mean/std.

    ``heldout`` is for tuning (never the test set): up to max_per_class/10 training images per class (500 for
    CIFAR-10, 50 for CIFAR-100) from those the long-tailed subset (seed 0, the releases' ``data.subset_seed``) leaves
    out, so the model never trained on them. The subset keeps class 0 whole, so class 0 is absent from it.
    """
    row = get_benchmark(benchmark)
    if split == "val":
        raise ValueError(f"CIFAR-LT benchmarks have no {split!r} split; use split='test' (or 'heldout' for tuning)")
    train_counts = train_class_counts(benchmark, imb_factor)
    if split == "heldout":
        arrays = load_cifar(row.cifar, train=True, root=data_dir)
        per_class = row.max_per_class // 10
        long_tailed = long_tailed_indices(arrays.labels, row.num_classes, imb_factor)
        kept = heldout_indices(arrays.labels, long_tailed, per_class)
        images, labels, class_names = arrays.images[kept], arrays.labels[kept], arrays.class_names
        absent = np.flatnonzero(np.bincount(labels, minlength=row.num_classes) == 0).tolist()
        source = (f"{arrays.source}: held-out split of {len(kept):,} training images outside the IF {imb_factor:g} "
                  f"long-tailed subset (seed {HELDOUT_SEED}), up to {per_class} per class"
                  + (f"; classes {absent} have none left (the subset keeps them whole)" if absent else ""))
    else:
        data = cifar_lt(row.cifar, "test", imb_factor=imb_factor, root=data_dir)
        images, labels, class_names, source = data.images, data.labels, data.class_names, data.source
    loader = ArrayLoader(images, labels, batch_size, transform=cifar_eval_transform(pretrained_cfg["mean"],
                                                                                    pretrained_cfg["std"]),
                         sampler=SequentialSampler(range(len(labels))), channels_last=channels_last)
    return EvalSet(loader, train_counts, list(class_names), source, arrays=(images, np.asarray(labels, np.int64)))


def _split_list_set(benchmark: str, split: str, pretrained_cfg: dict[str, Any], data_dir: str | Path | None,
                    batch_size: int, limit: int | None, num_workers: int, device: torch.device | str) -> EvalSet:
    """A large-scale benchmark split read from its list file; ``heldout`` is its ``val`` list, which OLTR carved from
    the training images. ``limit`` keeps the first images only (a quick run's subset)."""
    split = "val" if split == "heldout" else split
    root = image_root(benchmark, data_dir)
    row = get_benchmark(benchmark)
    list_file = find_split_list(benchmark, split, data_dir)
    dataset = SplitFileDataset(root, list_file, row.num_classes, eval_transform_from_cfg(pretrained_cfg))
    if limit:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    loader = image_loader(dataset, batch_size, num_workers, device)
    return EvalSet(loader, train_class_counts(benchmark, data_dir=data_dir), None,
                   f"{list_file} (images under {root})", list_file=list_file, image_root=root)


def eval_set(
    benchmark: str,
    split: str,
    pretrained_cfg: dict[str, Any],
    *,
    imb_factor: float | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
) -> EvalSet:
    """The ``split`` ("test", "val" or "heldout") of ``benchmark`` with ``pretrained_cfg``'s eval transform (its
    mean/std, and for 224-px benchmarks its input size, crop_pct and interpolation). ``imb_factor`` is the CIFAR-LT
    model's (``ltzoo.benchmarks.imb_factor_of``); ``data_dir`` the CIFAR root or the large-scale images and lists.
    ``limit``, ``num_workers`` and ``device`` apply to the split lists' DataLoader, ``channels_last`` to CIFAR's."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    if get_benchmark(benchmark).kind == "cifar_lt":
        return _cifar_set(benchmark, split, pretrained_cfg, imb_factor, data_dir, batch_size, channels_last)
    return _split_list_set(benchmark, split, pretrained_cfg, data_dir, batch_size, limit, num_workers, device)
