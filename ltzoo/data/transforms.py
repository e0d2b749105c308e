"""Per-image transforms: the large-scale benchmarks' train pipeline (docs/methods/baselines.md §1.2) and the eval
pipeline a timm-style pretrained cfg asks for, which every evaluation uses (`ltzoo.data.benchmark_sets.eval_set`)."""

from __future__ import annotations

from typing import Any

from timm.data import create_transform
from torchvision import transforms

from ltzoo.data.splits import split_list_benchmark

__all__ = ["benchmark_train_transform", "eval_transform_from_cfg"]

_CFG_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std")


def benchmark_train_transform(benchmark: str, input_size: int = 224) -> transforms.Compose:
    """RandomResizedCrop + flip (+ ColorJitter(0.4, 0.4, 0.4, 0) where the benchmark's row says so: ImageNet-LT,
    Places-LT), then ToTensor + Normalize(benchmark mean/std)."""
    info = split_list_benchmark(benchmark)
    steps = [transforms.RandomResizedCrop(input_size), transforms.RandomHorizontalFlip()]
    if info.color_jitter:
        steps.append(transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0))
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(info.mean, info.std)])


def eval_transform_from_cfg(pretrained_cfg: dict[str, Any]) -> transforms.Compose:
    """timm's eval pipeline for a pretrained cfg: Resize(int(size/crop_pct), interpolation) + CenterCrop(size)
    + ToTensor + Normalize(mean, std). With crop_pct 1.0 on images already at ``size`` (32-px CIFAR), resize and
    crop are the identity, so it is ToTensor + Normalize.
    """
    missing = [key for key in _CFG_KEYS if key not in pretrained_cfg]
    if missing:
        raise ValueError(f"pretrained_cfg lacks {', '.join(missing)}; an eval transform needs all of "
                       f"{', '.join(_CFG_KEYS)} (got keys: {', '.join(sorted(pretrained_cfg)) or 'none'})")
    return create_transform(
        input_size=tuple(pretrained_cfg["input_size"]),
        is_training=False,
        interpolation=pretrained_cfg["interpolation"],
        mean=tuple(pretrained_cfg["mean"]),
        std=tuple(pretrained_cfg["std"]),
        crop_pct=pretrained_cfg["crop_pct"],
        crop_mode="center",
    )
