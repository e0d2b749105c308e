"""Long-tail evaluation: top-1/top-5, many/medium/few, per-class accuracy, ECE and the confusion matrix.

Group accuracies follow docs/methods/baselines.md §2: classes are split by their TRAINING count (``shot_groups``), a
group's accuracy is the unweighted mean of its per-class accuracies, and an empty group is ``None`` (n/a), never 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from torch import Tensor, nn
from tqdm import tqdm

from ltzoo.data.shots import SHOT_GROUPS, shot_groups

__all__ = [
    "ECE_BINS",
    "EvalResult",
    "Predictions",
    "compute_metrics",
    "evaluate",
    "plot_per_class",
    "plot_reliability",
    "predict",
]

ECE_BINS = 15
_GROUP_COLOURS = {"many": "#4c72b0", "medium": "#dd8452", "few": "#c44e52"}
_RANK_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation; every accuracy and the ECE are percentages in [0, 100].

    ``per_class[k]`` is None when class k has no test image; ``many``/``medium``/``few`` are None when the group
    has no class (or none of its classes has a test image). ``images_per_sec`` is None unless timed by ``evaluate``.
    """

    top1: float
    top5: float
    many: float | None
    medium: float | None
    few: float | None
    per_class: list[float | None]
    ece: float
    confusion: np.ndarray
    num_images: int
    images_per_sec: float | None
    group_sizes: dict[str, int]
    reliability: dict[str, list[float]] | None = None  # per ECE bin: count, accuracy and mean confidence (%)
    test_dists: dict[str, float] | None = None  # top-1 on shifted test distributions (ltzoo.evaluation)

    def to_dict(self, include_confusion: bool = True) -> dict[str, Any]:
        """Plain JSON-serialisable dict; the confusion matrix becomes nested lists (rows = true class)."""
        out: dict[str, Any] = {
            "top1": self.top1,
            "top5": self.top5,
            "many": self.many,
            "medium": self.medium,
            "few": self.few,
            "per_class": list(self.per_class),
            "ece": self.ece,
            "num_images": self.num_images,
            "images_per_sec": self.images_per_sec,
            "group_sizes": dict(self.group_sizes),
            "reliability": self.reliability,
            "test_dists": self.test_dists,
        }
        if include_confusion:
            out["confusion"] = self.confusion.tolist()
        return out

    def format_report(self, title: str) -> str:
        """One-screen text report: overall, top-5, many/medium/few with their class counts, ECE and speed."""
        lines = [title, f"  {'images':<8}{self.num_images:>10,}", f"  {'top-1':<8}{_percent(self.top1)}"]
        lines.append(f"  {'top-5':<8}{_percent(self.top5)}")
        for group in SHOT_GROUPS:
            size = self.group_sizes[group]
            classes = f"{size} {'class' if size == 1 else 'classes'}"
            lines.append(f"  {group:<8}{_percent(getattr(self, group))}   ({classes})")
        lines.append(f"  {'ECE':<8}{_percent(self.ece)}   ({ECE_BINS} bins)")
        speed = "n/a" if self.images_per_sec is None else f"{self.images_per_sec:,.1f}"
        lines.append(f"  {'speed':<8}{speed:>10} images/s")
        if self.test_dists:
            lines.append("  top-1 on shifted test distributions (forward: head-heavy, backward: tail-heavy)")
            lines += [f"    {name:<12}{_percent(value)}" for name, value in self.test_dists.items()]
        return "\n".join(lines)


def _percent(value: float | None) -> str:
    """Right-aligned percentage, or n/a for a missing value."""
    return f"{'n/a':>8}  " if value is None else f"{value:>8.2f} %"


def _as_counts(train_counts: Sequence[int] | np.ndarray | Tensor, num_classes: int) -> np.ndarray:
    """Training counts as an int64 array of length ``num_classes``, or a ValueError naming both lengths."""
    counts = np.asarray(train_counts.cpu() if isinstance(train_counts, Tensor) else train_counts, dtype=np.int64)
    if counts.ndim != 1 or len(counts) != num_classes:
        raise ValueError(f"train_counts has {counts.size} entries but the logits have {num_classes} classes")
    return counts


def _check_inputs(logits: Tensor, labels: Tensor) -> None:
    """Raise a clear error unless logits are (N, C) finite floats and labels are (N,) integers in [0, C)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("cannot compute metrics on zero images")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    num_classes = logits.shape[1]
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel() > 0:
        raise ValueError(f"label {int(bad[0])} is outside [0, {num_classes}) for logits with {num_classes} classes")


def _true_class_rank(logits: Tensor, labels: Tensor) -> Tensor:
    """0-based rank of each true class; ties go to the lower class index, as ``argmax`` does."""
    ranks = []
    class_index = torch.arange(logits.shape[1])
    for start in range(0, logits.shape[0], _RANK_CHUNK):
        chunk, chunk_labels = logits[start : start + _RANK_CHUNK], labels[start : start + _RANK_CHUNK]
        true_logit = chunk.gather(1, chunk_labels[:, None])
        ahead = (chunk > true_logit) | ((chunk == true_logit) & (class_index < chunk_labels[:, None]))
        ranks.append(ahead.sum(dim=1))
    return torch.cat(ranks)


def _calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> tuple[float, dict]:
    """ECE as a fraction in [0, 1] and the reliability bins (count, accuracy %, mean confidence %; NaN when empty).

    ECE = Σ_b |B_b|/N · |acc(B_b) − conf(B_b)| over equal-width bins (lower, upper], computed as
    Σ_b |Σ_{i∈B_b} correct_i − Σ_{i∈B_b} conf_i| / N, which is the same sum.
    """
    bin_index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(bin_index, minlength=bins)
    correct_sum = np.bincount(bin_index, weights=correct.astype(np.float64), minlength=bins)
    confidence_sum = np.bincount(bin_index, weights=confidence, minlength=bins)
    ece = float(np.abs(correct_sum - confidence_sum).sum() / len(confidence))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy, mean_confidence = 100.0 * correct_sum / count, 100.0 * confidence_sum / count
    reliability = {
        "count": count.astype(float).tolist(),
        "accuracy": [float(a) if n else None for a, n in zip(accuracy, count)],
        "confidence": [float(c) if n else None for c, n in zip(mean_confidence, count)],
    }
    return ece, reliability


def compute_metrics(
    logits: Tensor, labels: Tensor, train_counts: Sequence[int] | np.ndarray | Tensor
) -> EvalResult:
    """All metrics from (N, C) logits and (N,) labels; ``train_counts`` (length C) defines many/medium/few.

    Top-k counts ties in favour of the lower class index (so top-1 is ``argmax`` accuracy); top-5 is 100 when
    C ≤ 5. ECE uses the max-softmax confidence in 15 equal-width bins and is reported in percent.
    """
    _check_inputs(logits, labels)
    logits, labels = logits.detach().cpu().float(), labels.detach().cpu().long()
    num_images, num_classes = logits.shape
    counts = _as_counts(train_counts, num_classes)

    rank = _true_class_rank(logits, labels).numpy()
    prediction = logits.argmax(dim=1).numpy()
    confidence = torch.softmax(logits.double(), dim=1).max(dim=1).values.numpy()
    true = labels.numpy()

    confusion = np.bincount(true * num_classes + prediction, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).astype(np.int64)
    test_counts = confusion.sum(axis=1)
    has_images = test_counts > 0
    class_accuracy = np.where(has_images, 100.0 * np.diag(confusion) / np.maximum(test_counts, 1), np.nan)

    groups = shot_groups(counts)
    group_accuracy: dict[str, float | None] = {}
    for group in SHOT_GROUPS:
        members = np.asarray(groups[group], dtype=np.int64)
        evaluated = members[has_images[members]]
        group_accuracy[group] = float(class_accuracy[evaluated].mean()) if len(evaluated) else None

    ece, reliability = _calibration_bins(confidence, prediction == true)
    return EvalResult(
        top1=float(100.0 * (rank == 0).mean()),
        top5=float(100.0 * (rank < 5).mean()),
        many=group_accuracy["many"],
        medium=group_accuracy["medium"],
        few=group_accuracy["few"],
        per_class=[float(a) if ok else None for a, ok in zip(class_accuracy, has_images)],
        ece=100.0 * ece,
        confusion=confusion,
        num_images=num_images,
        images_per_sec=None,
        group_sizes={group: len(groups[group]) for group in SHOT_GROUPS},
        reliability=reliability,
    )


def _unpack(batch: Any) -> tuple[Tensor, Tensor]:
    """(images, labels) of a batch that has ``.images``/``.labels`` or is an (images, labels, ...) sequence."""
    if hasattr(batch, "images") and hasattr(batch, "labels"):
        return batch.images, batch.labels
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(f"a batch must have .images and .labels or be an (images, labels) pair, got {type(batch).__name__}")


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A model's outputs over a whole split, in loader order: float32 logits (N, C), labels (N,), and the
    penultimate features (N, D) when asked for (``predict(..., features=True)``), else None."""

    logits: Tensor
    labels: Tensor
    features: Tensor | None
    images_per_sec: float | None


def _outputs(model: nn.Module, images: Tensor, with_features: bool) -> tuple[Tensor, Tensor | None]:
    """(logits, pre-logit features or None) of one batch, both float32."""
    if not with_features:
        return model(images).float(), None
    feature_map = model.forward_features(images)
    return model.forward_head(feature_map).float(), model.forward_head(feature_map, pre_logits=True).float()


def predict(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "predict",
    features: bool = False,
) -> Predictions:
    """Run ``model`` over ``loader`` under ``inference_mode``; the model's train/eval mode is restored afterwards.

    ``flip`` averages the outputs of x and its horizontal mirror; ``amp_dtype`` (e.g. bf16) enables autocast.
    ``features`` also keeps the penultimate features (timm's ``forward_head(pre_logits=True)``; a ValueError for a
    model without it). ``images_per_sec`` is end-to-end throughput, data loading included.
    """
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    with_features = features
    if with_features and not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ValueError(f"features=True needs timm's forward_features/forward_head, which "
                         f"{type(model).__name__} lacks")
    was_training = model.training
    model.eval()
    all_logits, all_features, all_labels = [], [], []
    try:
        with torch.inference_mode(), tqdm(loader, desc=desc, unit="batch", disable=not progress) as bar:
            start = time.perf_counter()
            for batch in bar:
                images, labels = _unpack(batch)
                images = images.to(device, non_blocking=True)
                if images.ndim == 4:
                    images = images.contiguous(memory_format=memory_format)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits, features = _outputs(model, images, with_features)
                    if flip:
                        flipped_logits, flipped_features = _outputs(model, images.flip(-1), with_features)
                        logits = (logits + flipped_logits) / 2
                        features = None if features is None else (features + flipped_features) / 2
                all_logits.append(logits.cpu())
                if features is not None:
                    all_features.append(features.cpu())
                all_labels.append(torch.as_tensor(labels).cpu())
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
    finally:
        model.train(was_training)
    if not all_logits:
        raise ValueError("the loader yielded no batches")
    labels = torch.cat(all_labels).long()
    return Predictions(
        logits=torch.cat(all_logits),
        labels=labels,
        features=torch.cat(all_features) if all_features else None,
        images_per_sec=len(labels) / elapsed if elapsed > 0 else None,
    )


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    train_counts: Sequence[int] | np.ndarray | Tensor,
    *,
    flip: bool = False,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "validate",
) -> EvalResult:
    """``compute_metrics`` of ``predict(model, loader, ...)``'s logits, with its throughput as ``images_per_sec``."""
    outputs = predict(model, loader, flip=flip, amp_dtype=amp_dtype, channels_last=channels_last, device=device,
                      progress=progress, desc=desc)
    result = compute_metrics(outputs.logits, outputs.labels, train_counts)
    return dataclasses.replace(result, images_per_sec=outputs.images_per_sec)


def _group_of_class(train_counts: np.ndarray) -> np.ndarray:
    """Group name of every class, by training count."""
    group_of = np.empty(len(train_counts), dtype=object)
    for group, members in shot_groups(train_counts).items():
        group_of[np.asarray(members, dtype=np.int64)] = group
    return group_of


def plot_reliability(result: EvalResult, axis: Any) -> None:
    """Draw the reliability diagram of ``result`` on a matplotlib axis: accuracy per confidence bin against the
    diagonal, the gap shaded, the share of images per bin as a second bar series; ECE in the title."""
    if result.reliability is None:
        raise ValueError("this EvalResult has no reliability bins (it was not made by compute_metrics)")
    bins = len(result.reliability["count"])
    width = 100.0 / bins
    centres = (np.arange(bins) + 0.5) * width
    count = np.asarray(result.reliability["count"], dtype=np.float64)
    accuracy = np.array([np.nan if a is None else a for a in result.reliability["accuracy"]])
    confidence = np.array([np.nan if c is None else c for c in result.reliability["confidence"]])
    filled = count > 0
    axis.bar(centres[filled], accuracy[filled], width=width * 0.95, color="#4c72b0", label="accuracy")
    axis.bar(centres[filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width * 0.95,
             color="#c44e52", alpha=0.35, label="gap to confidence")
    axis.plot([0, 100], [0, 100], color="black", linestyle="--", linewidth=1)
    axis.step(np.r_[0.0, centres + width / 2], np.r_[0.0, 100.0 * count / count.sum()], where="pre",
              color="grey", linewidth=1, label="images (%)")
    axis.set_xlim(0, 100)
    axis.set_ylim(0, 100)
    axis.set_xlabel("confidence (%)")
    axis.set_ylabel("accuracy (%)")
    axis.legend(loc="upper left", fontsize=8, framealpha=0.9)
    axis.set_title(f"reliability: ECE {result.ece:.2f} % ({bins} bins)")


def plot_per_class(
    result: EvalResult,
    train_counts: Sequence[int] | np.ndarray | Tensor,
    path: str | Path,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Save the long-tail figure: per-class accuracy bars over classes sorted by training count (counts on a 2nd
    axis), the overall top-1 in its title, and the reliability diagram (``plot_reliability``) beside it.

    Bars and shaded regions are coloured by many/medium/few; the count axis is log-scaled when max/min > 20.
    """
    num_classes = len(result.per_class)
    counts = _as_counts(train_counts, num_classes)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries but the result has {num_classes} classes")
    order = np.argsort(-counts, kind="stable")
    group_of = _group_of_class(counts)[order]
    accuracy = np.array([np.nan if a is None else a for a in result.per_class], dtype=np.float64)[order]
    position = np.arange(num_classes)

    width = min(16.0, max(7.0, 0.25 * num_classes))
    figure = Figure(figsize=(width + 4.5, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axis, reliability_axis = figure.subplots(1, 2, width_ratios=(width, 4.5))
    handles = []
    for group in SHOT_GROUPS:
        in_group = group_of == group
        if not in_group.any():
            continue
        first, last = position[in_group].min(), position[in_group].max()
        axis.axvspan(first - 0.5, last + 0.5, color=_GROUP_COLOURS[group], alpha=0.08, linewidth=0)
        shown = in_group & ~np.isnan(accuracy)
        axis.bar(position[shown], accuracy[shown], width=0.8, color=_GROUP_COLOURS[group])
        value = getattr(result, group)
        label = f"{group} ({in_group.sum()} cl.): " + ("n/a" if value is None else f"{value:.1f} %")
        handles.append(Patch(color=_GROUP_COLOURS[group], label=label))
    axis.set_xlim(-0.5, num_classes - 0.5)
    axis.set_ylim(0, 100)
    axis.set_ylabel("test accuracy (%)")
    if class_names is not None and num_classes <= 40:
        axis.set_xticks(position, [class_names[k] for k in order], rotation=60, ha="right", fontsize=8)
        axis.set_xlabel("class (sorted by training count)")
    else:
        axis.set_xlabel("class rank by training count")

    count_axis = axis.twinx()
    count_axis.plot(position, counts[order], color="black", linewidth=1.5, marker="." if num_classes <= 100 else None)
    if counts.min() > 0 and counts.max() / counts.min() > 20:
        count_axis.set_yscale("log")
    count_axis.set_ylabel("training images")
    handles.append(Line2D([], [], color="black", linewidth=1.5, label="training count"))
    axis.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    overall = f"top-1 {result.top1:.2f} %"
    axis.set_title(f"{title}: {overall}" if title else f"per-class accuracy: {overall}")
    if result.reliability is not None:
        plot_reliability(result, reliability_axis)
    else:
        reliability_axis.set_axis_off()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path
