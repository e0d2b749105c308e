"""Images/s of ltzoo's batched CIFAR-10-LT (IF 100) pipelines against the per-image PIL DataLoader baseline.

Usage: python benchmarks/data_throughput.py [--epochs N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from ltzoo.augment.views import (
    MultiView,
    cifar_autoaugment_transform,
    cifar_contrastive_transform,
    cifar_train_transform,
)
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.cifar import CifarDataset, LongTailedCifar, cifar_lt
from ltzoo.data.loader import ArrayLoader

BATCH_SIZE = 128



def images_per_second(batches: Iterable, epochs: int, set_epoch=None) -> float:
    """Iterate ``epochs`` passes over ``batches`` and return the images produced per second of wall time."""
    count, start = 0, time.perf_counter()
    for epoch in range(epochs):
        if set_epoch is not None:
            set_epoch(epoch)
        for batch in batches:
            images = batch[0]
            count += (images[0] if isinstance(images, tuple) else images).shape[0]
    return count / (time.perf_counter() - start)


def ltzoo_rate(images: np.ndarray, labels: np.ndarray, transform, epochs: int) -> float:
    """Throughput of ``ArrayLoader`` with a batched transform."""
    loader = ArrayLoader(images, labels, BATCH_SIZE, transform, seed=0)
    return images_per_second(loader, epochs, loader.set_epoch)


def pil_baseline_rate(data: LongTailedCifar, epochs: int) -> float:
    """Throughput of the LDAM-DRW reference pipeline: per-image PIL transforms, DataLoader with 2 workers."""
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )
    loader = DataLoader(CifarDataset(data, transform), batch_size=BATCH_SIZE, shuffle=True, num_workers=2)
    return images_per_second(loader, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training set per pipeline")
    args = parser.parse_args()

    data = cifar_lt("cifar10", "train", 100)
    images, labels = data.images, data.labels
    print(f"CIFAR-10-LT IF 100 train: {len(images)} images, batch {BATCH_SIZE}, {args.epochs} epochs, "
          f"torch threads {torch.get_num_threads()}")
    contrastive = cifar_contrastive_transform()
    three_views = MultiView((cifar_autoaugment_transform(), contrastive, contrastive))
    rows = [
        ("baseline: PIL crop+flip, DataLoader 2 workers", pil_baseline_rate(data, args.epochs)),
        ("ltzoo: crop+flip (cifar_train_transform)", ltzoo_rate(images, labels, cifar_train_transform(), args.epochs)),
        ("ltzoo: contrastive view", ltzoo_rate(images, labels, contrastive, args.epochs)),
        ("ltzoo: crop+flip+AutoAugment", ltzoo_rate(images, labels, cifar_autoaugment_transform(), args.epochs)),
        ("ltzoo: ConCutMix 3 views (AA + 2 contrastive)", ltzoo_rate(images, labels, three_views, args.epochs)),
    ]
    baseline = rows[0][1]
    print(f"{'pipeline':<48} {'images/s':>10} {'x baseline':>11}")
    for name, rate in rows:
        print(f"{name:<48} {rate:>10,.0f} {rate / baseline:>11.2f}")


if __name__ == "__main__":
    main()
