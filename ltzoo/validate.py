"""Evaluate a zoo model on the benchmark in its name, with its pretrained cfg's eval transform (timm ``validate``).

CIFAR-LT entries read the balanced CIFAR test set through ``ArrayLoader``; ImageNet-LT, iNaturalist 2018 and
Places-LT read the OLTR split lists through a torch ``DataLoader``. Many/medium/few always use the TRAINING counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler

from ltzoo.data.batch_transforms import cifar_eval_transform
from ltzoo.data.cifar import ZOO_CIFAR_DATASETS, cifar_lt
from ltzoo.data.loader import ArrayLoader
from ltzoo.data.splits import BENCHMARKS, SplitFileDataset, find_split_list, read_split_list
from ltzoo.data.transforms import eval_transform_from_cfg
from ltzoo.evaluate import EvalResult, evaluate, plot_per_class
from ltzoo.factory import create_model
from ltzoo.hub import sha256_file
from ltzoo.registry import get_pretrained_cfg, resolve

__all__ = ["AMP_DTYPES", "default_amp", "validate"]

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16}
MAX_JSON_CONFUSION_CLASSES = 1000
_CPUINFO = Path("/proc/cpuinfo")


def _cpu_has_native_bf16() -> bool:
    """Whether /proc/cpuinfo lists a native bf16 instruction set (AVX-512 BF16 or AMX BF16)."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _device() -> torch.device:
    """The device ``validate`` runs on: the current CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_amp() -> str | None:
    """"bf16" when the device ``validate`` would use has native bf16 (CUDA bf16 support, or a bf16 CPU), else None."""
    if _device().type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else None
    return "bf16" if _cpu_has_native_bf16() else None


@dataclass(frozen=True)
class _EvalData:
    """What one benchmark split contributes to an evaluation."""

    loader: Iterable[Any]
    train_counts: np.ndarray
    class_names: list[str] | None
    source: str


def _cifar_data(
    dataset: str, split: str, cfg: dict[str, Any], data_dir: str | Path | None, batch_size: int
) -> _EvalData:
    """The balanced CIFAR test set in a fixed order, normalised with the cfg's mean/std."""
    if split != "test":
        raise ValueError(f"CIFAR-LT benchmarks have no {split!r} split; use split='test'")
    data = cifar_lt(dataset, "test", imb_factor=cfg["imb_factor"], root=data_dir)
    loader = ArrayLoader(
        data.images,
        data.labels,
        batch_size,
        transform=cifar_eval_transform(cfg["mean"], cfg["std"]),
        sampler=SequentialSampler(range(len(data.labels))),
    )
    return _EvalData(loader, np.asarray(data.class_counts), list(data.class_names), data.source)


def _split_file_data(
    benchmark: str, split: str, cfg: dict[str, Any], data_dir: str | Path | None, batch_size: int
) -> _EvalData:
    """A large-scale benchmark split read from its list file; many/medium/few come from the train list's counts."""
    image_root = data_dir or os.environ.get("LTZOO_DATA")
    if image_root is None:
        raise ValueError(
            f"{benchmark} needs data_dir (or $LTZOO_DATA): the folder its list's image paths are relative to"
        )
    num_classes = BENCHMARKS[benchmark].num_classes
    list_file = find_split_list(benchmark, split, data_dir)
    _, train_labels = read_split_list(find_split_list(benchmark, "train", data_dir), num_classes)
    dataset = SplitFileDataset(image_root, list_file, num_classes, eval_transform_from_cfg(cfg))
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=_num_workers(), pin_memory=_device().type == "cuda"
    )
    train_counts = np.bincount(train_labels, minlength=num_classes)
    return _EvalData(loader, train_counts, None, f"{list_file} (images under {image_root})")


def _num_workers() -> int:
    """Data-loading workers: the CPUs this process may use, up to 8."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(8, available)


def _weights_record(pretrained: bool, checkpoint: str | Path | None, cfg: dict[str, Any]) -> dict[str, str | None]:
    """Where the evaluated weights came from and their sha256, for the JSON record."""
    if checkpoint is not None:
        return {"weights": f"checkpoint:{checkpoint}", "weights_sha256": sha256_file(checkpoint)}
    if pretrained:
        source = cfg.get("file") or f"hf-hub:{cfg['hf_hub_id']}"
        return {"weights": f"pretrained:{source}", "weights_sha256": cfg.get("sha256")}
    return {"weights": "random-init", "weights_sha256": None}


def validate(
    name: str,
    *,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    batch_size: int = 256,
    flip: bool = False,
    amp: str | None = None,
    json_out: str | Path | None = None,
    plot: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate zoo model ``name`` on its benchmark's ``split`` ("test" or "val"), optionally saving JSON and a plot.

    ``amp`` is "bf16" or None; ``flip`` adds horizontal-flip test-time augmentation. The JSON holds ``to_dict()``
    (the confusion matrix only up to ``MAX_JSON_CONFUSION_CLASSES`` classes) plus name, tag, split and the weights'
    and data's sources. ``data_dir`` is the CIFAR root or the folder of a large-scale benchmark's images and lists.
    """
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}")
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    entry, tag = resolve(name)
    full_name = f"{entry.name}.{tag}"
    cfg = get_pretrained_cfg(name)
    model = create_model(name, pretrained=pretrained, checkpoint_path=checkpoint)  # first: no weights fails fast
    if entry.dataset in ZOO_CIFAR_DATASETS:
        data = _cifar_data(ZOO_CIFAR_DATASETS[entry.dataset], split, cfg, data_dir, batch_size)
    else:
        data = _split_file_data(entry.dataset, split, cfg, data_dir, batch_size)
    result = evaluate(
        model,
        data.loader,
        data.train_counts,
        flip=flip,
        amp_dtype=AMP_DTYPES[amp] if amp else None,
        device=_device(),
        progress=progress,
        desc=f"{full_name} {split}",
    )
    if json_out is not None:
        record = {
            "name": entry.name,
            "tag": tag,
            "benchmark": entry.dataset,
            "split": split,
            **_weights_record(pretrained, checkpoint, model.pretrained_cfg),
            "data": data.source,
            "flip": flip,
            "amp": amp,
            **result.to_dict(include_confusion=len(result.per_class) <= MAX_JSON_CONFUSION_CLASSES),
        }
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(record, indent=2) + "\n")
    if plot is not None:
        plot_per_class(result, data.train_counts, plot, title=f"{full_name} ({split})", class_names=data.class_names)
    return result
