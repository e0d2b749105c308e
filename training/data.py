"""Training and test data for a config: CIFAR-LT on the batched in-memory loader, split-file lists on DataLoader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler, Subset

from ltzoo.benchmarks import get_benchmark
from ltzoo.data import (
    ArrayLoader,
    BatchedDataLoader,
    ShardedSampler,
    SplitFileDataset,
    benchmark_train_transform,
    cifar_lt,
    find_split_list,
)
from ltzoo.data.benchmark_sets import eval_set, image_root
from ltzoo.data.loader import image_loader
from ltzoo.methods import TrainingMethod, TrainSet


@dataclass
class TrainData:
    """The benchmark of a config: training class counts, the test loader, and how to make the train loader."""

    class_counts: np.ndarray
    test: Any
    source: str
    make_train: Callable[[TrainingMethod], Any]  # method -> ArrayLoader or BatchedDataLoader over the train split
    val: Any = None  # the val split's loader, built when the config selects its epoch on it


def _per_rank_batch(global_batch: int, world_size: int) -> int:
    if global_batch % world_size:
        raise ValueError(f"data.batch_size {global_batch} is not divisible by the {world_size} processes")
    return global_batch // world_size


def _cifar(cfg: Any, pretrained_cfg: dict[str, Any], rank: int, world_size: int, device: torch.device) -> TrainData:
    data = cfg.data
    if cfg.select == "val":
        raise ValueError(f"select: val needs a val split, and {data.dataset} has none (the benchmark is train/test "
                         "only); use select: last")
    factor = data.imb_factor  # the tag's, filled in and checked by training.config
    train = cifar_lt(get_benchmark(data.dataset).cifar, "train", factor, seed=data.subset_seed, root=data.root)
    images, labels = train.images, train.labels
    if data.subset:
        keep = np.sort(np.random.RandomState(data.subset_seed).permutation(len(labels))[: data.subset])
        images, labels = images[keep], labels[keep]
    mean, std = pretrained_cfg["mean"], pretrained_cfg["std"]
    batch = _per_rank_batch(data.batch_size, world_size)

    def make_train(method: TrainingMethod) -> ArrayLoader:
        method.bind_data(TrainSet(labels, batch, cfg.seed, tuple(mean), tuple(std), images=images, rank=rank,
                                  world_size=world_size, channels_last=cfg.channels_last, device=device))
        return ArrayLoader(images, labels, batch, method.cifar_transform(mean, std),
                           sampler=method.train_sampler(labels, cfg.seed), seed=cfg.seed, rank=rank,
                           world_size=world_size, drop_last=method.drop_last, channels_last=cfg.channels_last,
                           device=device)

    test = eval_set(data.dataset, "test", pretrained_cfg, imb_factor=factor, data_dir=data.root,
                    channels_last=cfg.channels_last)
    return TrainData(np.bincount(labels, minlength=train.num_classes), test.loader, train.source, make_train)


def _split_files(cfg: Any, pretrained_cfg: dict[str, Any], rank: int, world_size: int,
                 device: torch.device) -> TrainData:
    data = cfg.data
    info = get_benchmark(data.dataset)
    root = image_root(data.dataset, data.root, "data.root")
    train_list = find_split_list(data.dataset, "train", data.root)
    train_transform = benchmark_train_transform(data.dataset)
    train_set = SplitFileDataset(root, train_list, info.num_classes, train_transform)
    if train_set.paths and not (root / train_set.paths[0]).is_file():
        raise FileNotFoundError(f"data.root={root} does not hold the {data.dataset} images: "
                                f"{root / train_set.paths[0]}, the first image of {train_list}, does not exist")
    counts = train_set.class_counts
    batch = _per_rank_batch(data.batch_size, world_size)

    def eval_loader(split: str) -> tuple[Any, Path]:
        split_set = eval_set(data.dataset, split, pretrained_cfg, data_dir=data.root, batch_size=batch,
                             limit=data.subset, num_workers=data.num_workers, device=device)
        return split_set.loader, split_set.list_file

    test_loader, test_list = eval_loader("test")
    val_loader = None
    if cfg.select == "val":
        if info.split_files["val"] == info.split_files["test"]:
            raise ValueError(f"select: val needs a val split apart from the test split, and {data.dataset}'s val list "
                             f"is its test list ({test_list.name}); use select: last")
        val_loader = eval_loader("val")[0]
    if data.subset:
        train_set = Subset(train_set, range(min(data.subset, len(train_set))))

    def make_train(method: TrainingMethod) -> BatchedDataLoader:
        views = method.image_transform(info.mean, info.std)
        if views is not None:
            (train_set.dataset if isinstance(train_set, Subset) else train_set).transform = views
        labels = np.asarray(train_set.targets if not data.subset else
                            [train_set.dataset.targets[i] for i in train_set.indices])
        method.bind_data(TrainSet(labels, batch, cfg.seed, info.mean, info.std, dataset=train_set, rank=rank,
                                  world_size=world_size, channels_last=cfg.channels_last, num_workers=data.num_workers,
                                  device=device))
        drawn = method.train_sampler(labels, cfg.seed)
        sampler = (DistributedSampler(train_set, world_size, rank, shuffle=True, seed=cfg.seed) if drawn is None
                   else ShardedSampler(drawn, rank, world_size))
        return BatchedDataLoader(image_loader(train_set, batch, data.num_workers, device, sampler=sampler,
                                              drop_last=method.drop_last), cfg.channels_last, device)

    return TrainData(counts, test_loader, f"split lists {train_list.name} / {test_list.name}", make_train, val_loader)


def build_data(cfg: Any, pretrained_cfg: dict[str, Any], rank: int = 0, world_size: int = 1,
               device: torch.device | str = "cpu") -> TrainData:
    """The config's benchmark: CIFAR-LT arrays in memory (the training arrays on `device`, augmented there), or the
    split-file datasets of a large-scale benchmark (decoded by worker processes, batches delivered on `device`)."""
    device = torch.device(device)
    if get_benchmark(cfg.data.dataset).kind == "cifar_lt":
        return _cifar(cfg, pretrained_cfg, rank, world_size, device)
    return _split_files(cfg, pretrained_cfg, rank, world_size, device)
