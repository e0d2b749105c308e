"""Test-agnostic evaluation (Zhang et al., NeurIPS 2022, SADE): forward- and backward-long-tailed test sets.

Each shifted set is a per-class subsample of the balanced test set. With n test images per class, C classes and
imbalance factor IF, class c keeps

    forward-IF:   n_c = int(n · (1/IF)^(c/(C−1)))          (class 0, the largest training class, keeps all n)
    backward-IF:  n_c = int(n · (1/IF)^((C−1−c)/(C−1)))    (the same counts reversed: the tail keeps all n)
    uniform:      n_c = n                                   (the whole balanced test set)

for IF in 50, 25, 10, 5, 2, with the counts formula of the CIFAR-LT training split (``img_num_per_cls``). Which
images a class keeps is drawn once with a fixed seed (one ``np.random.RandomState(seed)`` shuffling each class's
ascending positions in turn, keeping the first n_c), so a set is the same on every run and machine. Accuracy on a
set is computed from predictions on the full test set at the kept positions: the model runs once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from ltzoo.data.cifar import img_num_per_cls

__all__ = [
    "SHIFT_FACTORS",
    "SHIFT_SEED",
    "TEST_DISTRIBUTIONS",
    "parse_test_dists",
    "plot_test_dists",
    "shifted_accuracies",
    "shifted_class_counts",
    "shifted_indices",
]

SHIFT_FACTORS: tuple[int, ...] = (50, 25, 10, 5, 2)
SHIFT_SEED = 0
# In plot order: from the most head-heavy test set, through uniform, to the most tail-heavy one.
TEST_DISTRIBUTIONS: tuple[str, ...] = (
    *(f"forward{f}" for f in SHIFT_FACTORS),
    "uniform",
    *(f"backward{f}" for f in reversed(SHIFT_FACTORS)),
)
_NAME = re.compile(r"(forward|backward)(\d+)")


def parse_test_dists(spec: str) -> list[str]:
    """``"all"`` or a comma list such as ``"backward50,uniform"`` → names in ``TEST_DISTRIBUTIONS`` order."""
    if spec.strip() == "all":
        return list(TEST_DISTRIBUTIONS)
    names = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [name for name in names if name not in TEST_DISTRIBUTIONS]
    if unknown or not names:
        raise ValueError(f"unknown test distribution {', '.join(unknown) or repr(spec)}; use 'all' or a comma list "
                         f"of {', '.join(TEST_DISTRIBUTIONS)}")
    return [name for name in TEST_DISTRIBUTIONS if name in names]


def shifted_class_counts(name: str, per_class: int, num_classes: int) -> np.ndarray:
    """Test images each class keeps in distribution ``name``, from a balanced set of ``per_class`` per class."""
    if name == "uniform":
        return np.full(num_classes, per_class, dtype=np.int64)
    match = _NAME.fullmatch(name)
    if match is None or name not in TEST_DISTRIBUTIONS:
        raise ValueError(f"unknown test distribution {name!r}; choose from {', '.join(TEST_DISTRIBUTIONS)}")
    counts = np.asarray(img_num_per_cls(per_class, num_classes, float(match.group(2))), dtype=np.int64)
    return counts if match.group(1) == "forward" else counts[::-1].copy()


def _balanced_per_class(labels: np.ndarray, num_classes: int) -> int:
    """Images per class of a balanced label array, or a ValueError naming the first class that differs."""
    counts = np.bincount(labels, minlength=num_classes)
    if (counts != counts[0]).any():
        odd = int(np.flatnonzero(counts != counts[0])[0])
        raise ValueError(f"shifted test distributions subsample a balanced test set, but class {odd} has "
                         f"{counts[odd]} images and class 0 has {counts[0]}")
    return int(counts[0])


def shifted_indices(labels: Sequence[int] | np.ndarray, name: str, num_classes: int | None = None,
                    seed: int = SHIFT_SEED) -> np.ndarray:
    """Ascending positions into the balanced test set ``labels`` that make up distribution ``name``."""
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    counts = shifted_class_counts(name, _balanced_per_class(labels, num_classes), num_classes)
    if name == "uniform":
        return np.arange(len(labels), dtype=np.int64)
    rng = np.random.RandomState(seed)
    kept = []
    for cls, n_keep in enumerate(counts):
        positions = np.flatnonzero(labels == cls)
        rng.shuffle(positions)
        kept.append(positions[:n_keep])
    return np.sort(np.concatenate(kept)).astype(np.int64)


def shifted_accuracies(logits: Tensor, labels: Tensor, names: Sequence[str],
                       num_classes: int | None = None) -> dict[str, float]:
    """Top-1 (%) on each named shifted test set, from (N, C) logits on the full balanced test set."""
    correct = (logits.argmax(dim=1) == labels).cpu().numpy()
    label_array = labels.cpu().numpy()
    num_classes = logits.shape[1] if num_classes is None else num_classes
    return {name: float(100.0 * correct[shifted_indices(label_array, name, num_classes)].mean()) for name in names}


def plot_test_dists(curves: Mapping[str, Mapping[str, float]], path: str | Path, title: str | None = None) -> Path:
    """Save top-1 against the test distribution (forward-50 … uniform … backward-50), one line per model.

    ``curves`` maps a model's label to its {distribution: top-1} (``EvalResult.test_dists``)."""
    names = [name for name in TEST_DISTRIBUTIONS if any(name in curve for curve in curves.values())]
    if not names:
        raise ValueError("no shifted test distribution results to plot (evaluate with test_dists)")
    figure = Figure(figsize=(9.0, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    position = np.arange(len(names))
    for label, curve in curves.items():
        axis.plot(position, [curve.get(name, np.nan) for name in names], marker="o", linewidth=1.5, label=label)
    axis.set_xticks(position, names, rotation=45, ha="right")
    axis.set_xlabel("test distribution (forward: head-heavy … backward: tail-heavy)")
    axis.set_ylabel("top-1 (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, framealpha=0.9)
    axis.set_title(title or "top-1 on shifted test distributions")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path
