"""Several zoo models on the same benchmark data: one table and shared plots (``ltzoo compare``).

Each model is evaluated through ``validate.model_predictions``, so its outputs come from the prediction cache when
its weights, the data and the transform are unchanged (``ltzoo.evaluation.cache``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ltzoo.data.shots import SHOT_GROUPS
from ltzoo.evaluate import EvalResult
from ltzoo.evaluation.test_distributions import TEST_DISTRIBUTIONS
from ltzoo.hub import WEIGHTS_NAME
from ltzoo.registry import resolve
from ltzoo.validate import model_predictions

__all__ = ["ComparedModel", "compare", "comparison_table", "plot_per_class_comparison", "validate_command"]

@dataclass(frozen=True)
class ComparedModel:
    """One model's metrics (with every shifted test distribution) and the command that reproduces them."""

    name: str
    result: EvalResult
    train_counts: np.ndarray
    class_names: list[str] | None
    weights_sha256: str | None
    command: str


def validate_command(name: str, checkpoint: str | Path | None) -> str:
    """The ``ltzoo validate`` command that measures what ``compare`` reports for one model."""
    weights = f" --checkpoint {checkpoint}" if checkpoint is not None else ""
    return f"ltzoo validate {name}{weights} --test-dist all"


def compare(
    names: Sequence[str],
    *,
    releases_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = True,
    cache: bool = True,
) -> list[ComparedModel]:
    """Evaluate each zoo name on the test set of its benchmark; all must share the benchmark and imbalance factor.

    Weights are the published ones (Hub), or ``releases_dir/<name>/model.safetensors`` when ``releases_dir`` is set.
    """
    if not names:
        raise ValueError("compare needs at least one model name")
    full_names = []
    for name in names:
        entry, tag = resolve(name)
        full_names.append((entry, tag, f"{entry.name}.{tag}"))
    benchmarks = {(entry.dataset, tag.split("_")[0]) for entry, tag, _ in full_names}
    if len(benchmarks) > 1:
        raise ValueError("compare needs models of one benchmark (dataset and imbalance factor); got "
                         + ", ".join(f"{name} ({entry.dataset} {tag})" for entry, tag, name in full_names))
    compared = []
    for _, _, full in full_names:
        checkpoint = None
        if releases_dir is not None:
            checkpoint = Path(releases_dir) / full / WEIGHTS_NAME
            if not checkpoint.is_file():
                raise FileNotFoundError(f"{checkpoint} does not exist: {releases_dir} has no release folder {full}/")
        evaluation = model_predictions(full, pretrained=checkpoint is None, checkpoint=checkpoint, data_dir=data_dir,
                                       batch_size=batch_size, progress=progress, cache=cache)
        compared.append(ComparedModel(
            name=full, result=evaluation.result(test_dists=TEST_DISTRIBUTIONS), train_counts=evaluation.train_counts,
            class_names=evaluation.class_names, weights_sha256=evaluation.weights["weights_sha256"],
            command=validate_command(full, checkpoint)))
    return compared


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def comparison_table(models: Sequence[ComparedModel], test_dists: Sequence[str] = TEST_DISTRIBUTIONS,
                     markdown: bool = False, commands: bool = False) -> str:
    """A text (or Markdown) table: top-1, many/medium/few, ECE and top-1 on each shifted test distribution."""
    header = ["model", "top-1", *SHOT_GROUPS, "ECE", *test_dists] + (["measured with"] if commands else [])
    rows = []
    for model in models:
        result = model.result
        shifted = result.test_dists or {}
        row = [f"`{model.name}`" if markdown else model.name, _cell(result.top1),
               *(_cell(getattr(result, group)) for group in SHOT_GROUPS), _cell(result.ece),
               *(_cell(shifted.get(name)) for name in test_dists)]
        rows.append(row + ([f"`{model.command}`" if markdown else model.command] if commands else []))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    fmt = lambda row: "  ".join(  # noqa: E731
        cell.ljust(width) if i == 0 or i == len(header) - 1 and commands else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), *(fmt(row) for row in rows)])


def plot_per_class_comparison(models: Sequence[ComparedModel], path: str | Path, title: str | None = None) -> Path:
    """Per-class test accuracy, one line per model, classes sorted by training count (the first model's)."""
    counts = models[0].train_counts
    order = np.argsort(-counts, kind="stable")
    figure = Figure(figsize=(min(16.0, max(8.0, 0.25 * len(counts))), 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    position = np.arange(len(counts))
    for model in models:
        accuracy = np.array([np.nan if a is None else a for a in model.result.per_class])[order]
        axis.plot(position, accuracy, marker="o" if len(counts) <= 20 else None, linewidth=1.5,
                  label=f"{model.name} ({model.result.top1:.2f} %)")
    names = models[0].class_names
    if names is not None and len(counts) <= 40:
        axis.set_xticks(position, [names[k] for k in order], rotation=60, ha="right", fontsize=8)
        axis.set_xlabel("class (sorted by training count)")
    else:
        axis.set_xlabel("class rank by training count")
    axis.set_ylim(0, 100)
    axis.set_ylabel("test accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower left", framealpha=0.9)
    axis.set_title(title or "per-class accuracy (legend: overall top-1)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path
