"""Evaluate a zoo model on the benchmark in its name, with its pretrained cfg's eval transform (timm ``validate``).

The data is the benchmark's eval set as ``ltzoo.data.benchmark_sets.eval_set`` builds it (the training loop's
evaluation reads the same), with the imbalance factor the tag names. Many/medium/few always use the TRAINING counts.
The model runs once per weights, data and transform (``ltzoo.evaluation.cache``); shifted test distributions and
post-hoc adjustments are computed from those cached outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltzoo.benchmarks import get_benchmark, imb_factor_of
from ltzoo.data.benchmark_sets import EVAL_SPLITS, EvalSet, eval_set
from ltzoo.evaluate import EvalResult, Predictions, compute_metrics, plot_per_class, predict
from ltzoo.evaluation.cache import array_sha256, load_predictions, prediction_key, save_predictions
from ltzoo.evaluation.posthoc import posthoc_logits
from ltzoo.evaluation.test_distributions import parse_test_dists, plot_test_dists, shifted_accuracies
from ltzoo.factory import create_model
from ltzoo.hub import sha256_file
from ltzoo.precision import AMP_DTYPES, default_device
from ltzoo.registry import get_pretrained_cfg, resolve

__all__ = ["Evaluation", "model_predictions", "test_dists_plot_path", "validate"]

MAX_JSON_CONFUSION_CLASSES = 1000


def _identity(data: EvalSet, benchmark: str, split: str) -> dict[str, Any]:
    """What the prediction cache keys the data by: the arrays' sha256 (CIFAR-LT), the list's and the image folder."""
    if data.arrays is not None:
        images, labels = data.arrays
        return {"dataset": get_benchmark(benchmark).cifar, "split": split, "images_sha256": array_sha256(images),
                "labels_sha256": array_sha256(labels)}
    return {"benchmark": benchmark, "split": "val" if split == "heldout" else split,
            "list_sha256": sha256_file(data.list_file), "image_root": str(data.image_root.resolve())}


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


def test_dists_plot_path(plot: str | Path) -> Path:
    """Where ``validate`` saves the shifted-test-distribution plot beside the per-class ``plot``."""
    plot = Path(plot)
    return plot.with_name(f"{plot.stem}.test_dists.png")


@dataclass(frozen=True)
class Evaluation:
    """A model's cached outputs on one split with everything needed to score them."""

    name: str
    split: str
    model: torch.nn.Module
    predictions: Predictions
    train_counts: np.ndarray
    class_names: list[str] | None
    source: str
    weights: dict[str, str | None]

    def result(self, logit_adjust: float | None = None, tau_norm: float | None = None,
               test_dists: Sequence[str] = ()) -> EvalResult:
        """Metrics after the optional post-hoc adjustments, with top-1 on each named shifted test distribution."""
        logits = posthoc_logits(self.predictions, self.model.get_classifier(), self.train_counts,
                                logit_adjust=logit_adjust, tau_norm=tau_norm)
        result = compute_metrics(logits, self.predictions.labels, self.train_counts)
        shifted = shifted_accuracies(logits, self.predictions.labels, test_dists) if test_dists else None
        return dataclasses.replace(result, images_per_sec=self.predictions.images_per_sec, test_dists=shifted)


def model_predictions(
    name: str,
    *,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    batch_size: int = 256,
    flip: bool = False,
    amp: str | None = None,
    progress: bool = True,
    cache: bool = True,
) -> Evaluation:
    """Run zoo model ``name`` over its benchmark's ``split`` once, or load those outputs from the prediction cache
    (``cache``; keyed by the weights' sha256, the data and the transform: see ``ltzoo.evaluation.cache``)."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}")
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    entry, tag = resolve(name)
    full_name = f"{entry.name}.{tag}"
    cfg = get_pretrained_cfg(name)
    model = create_model(name, pretrained=pretrained, checkpoint_path=checkpoint)  # first: no weights fails fast
    data = eval_set(entry.dataset, split, cfg, imb_factor=imb_factor_of(entry.dataset, tag), data_dir=data_dir,
                    batch_size=batch_size, num_workers=_num_workers(), device=default_device())
    weights = _weights_record(pretrained, checkpoint, model.pretrained_cfg)
    transform = {k: cfg[k] for k in ("input_size", "crop_pct", "interpolation", "mean", "std")}
    identity = {"weights_sha256": weights["weights_sha256"], "data": _identity(data, entry.dataset, split),
                "transform": transform,
                "flip": flip, "amp": amp}
    use_cache = cache and weights["weights_sha256"] is not None
    key = prediction_key(identity)
    predictions = load_predictions(key) if use_cache else None
    if predictions is None:
        predictions = predict(model, data.loader, flip=flip, amp_dtype=AMP_DTYPES[amp] if amp else None,
                              device=default_device(), progress=progress, desc=f"{full_name} {split}",
                              features=isinstance(model.get_classifier(), torch.nn.Linear))  # for tau_norm
        if use_cache:
            save_predictions(key, predictions, identity)
    return Evaluation(full_name, split, model, predictions, data.train_counts, data.class_names, data.source,
                      weights)


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
    test_dists: str | Sequence[str] | None = None,
    logit_adjust: float | None = None,
    tau_norm: float | None = None,
    cache: bool = True,
) -> EvalResult:
    """Evaluate zoo model ``name`` on its benchmark's ``split``, optionally saving JSON and a plot.

    ``split`` is "test", "val" (large-scale benchmarks) or "heldout" (a split of unused training images, for
    tuning). ``amp`` is "bf16" or None; ``flip`` adds horizontal-flip test-time augmentation. ``test_dists`` ("all",
    a comma list or a sequence of names) adds top-1 on shifted test distributions; ``logit_adjust`` / ``tau_norm``
    are post-hoc τ's (``ltzoo.evaluation.posthoc``). The JSON holds ``to_dict()`` (the confusion matrix only up to
    ``MAX_JSON_CONFUSION_CLASSES`` classes) plus name, tag, split, the adjustments and the weights' and data's
    sources. ``data_dir`` is the CIFAR root or the folder of a large-scale benchmark's images and lists. ``plot``
    gets the per-class figure with the reliability diagram, and with ``test_dists`` ``test_dists_plot_path(plot)``
    the accuracy against the test distribution.
    """
    names = parse_test_dists(test_dists) if isinstance(test_dists, str) else list(test_dists or ())
    if names and split != "test":
        raise ValueError("shifted test distributions subsample the test set: use split='test'")
    evaluation = model_predictions(name, pretrained=pretrained, checkpoint=checkpoint, data_dir=data_dir, split=split,
                                   batch_size=batch_size, flip=flip, amp=amp, progress=progress, cache=cache)
    result = evaluation.result(logit_adjust=logit_adjust, tau_norm=tau_norm, test_dists=names)
    entry, tag = resolve(name)
    if json_out is not None:
        record = {
            "name": entry.name,
            "tag": tag,
            "benchmark": entry.dataset,
            "split": split,
            **evaluation.weights,
            "data": evaluation.source,
            "flip": flip,
            "amp": amp,
            "posthoc": {"logit_adjust": logit_adjust, "tau_norm": tau_norm},
            **result.to_dict(include_confusion=len(result.per_class) <= MAX_JSON_CONFUSION_CLASSES),
        }
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(record, indent=2) + "\n")
    if plot is not None:
        plot_per_class(result, evaluation.train_counts, plot, title=f"{evaluation.name} ({split})",
                       class_names=evaluation.class_names)
        if result.test_dists:
            plot_test_dists({evaluation.name: result.test_dists}, test_dists_plot_path(plot))
    return result
