"""Choose a post-hoc τ on a held-out split of the TRAINING data, then report the test set at that τ.

The test set is never used to pick τ: each τ of the grid is scored on the benchmark's held-out split
(``validate``'s ``split="heldout"``: for CIFAR-LT, training images the long-tailed subset left out; for the
large-scale benchmarks, their ``val`` list) by its class-balanced accuracy, the mean of per-class accuracies over
the classes the split holds (the balanced test set's top-1 is that mean too). CIFAR-LT's head class is absent from
the held-out split (the subset keeps all its images), so it counts only through the other classes' mistakes.
The smallest τ with the best held-out score wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ltzoo.evaluate import EvalResult, Predictions
from ltzoo.evaluation.posthoc import POSTHOC_KINDS, TAU_GRID, posthoc_logits
from ltzoo.validate import model_predictions

__all__ = ["SweepResult", "score_taus", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    """Held-out top-1 for each τ, the chosen τ, and the test metrics with and without the adjustment."""

    name: str
    kind: str
    taus: list[float]
    heldout_top1: list[float]  # class-balanced accuracy on the held-out split (%)
    heldout_source: str
    best_tau: float
    plain: EvalResult
    adjusted: EvalResult

    def format_report(self) -> str:
        """The τ grid with held-out top-1 (the chosen τ marked), then the test metrics plain vs. adjusted."""
        lines = [f"{self.name}: {self.kind} τ sweep on the held-out split (never the test set):",
                 f"  held-out: {self.heldout_source}", f"  {'τ':>5}  held-out class-balanced accuracy"]
        for tau, top1 in zip(self.taus, self.heldout_top1):
            lines.append(f"  {tau:>5.2f}  {top1:>8.2f} %" + ("   <- chosen" if tau == self.best_tau else ""))
        if self.best_tau in (self.taus[0], self.taus[-1]) and len(self.taus) > 1:
            lines.append("  note: the best τ is at the edge of the grid; a wider grid may do better on held-out data")
        lines.append(f"test set at the chosen τ = {self.best_tau:g}:")
        lines.append(f"  {'':<18}{'top-1':>8}{'many':>8}{'medium':>8}{'few':>8}{'ECE':>8}")
        for label, result in (("plain", self.plain), (f"{self.kind} τ={self.best_tau:g}", self.adjusted)):
            cells = [result.top1, result.many, result.medium, result.few, result.ece]
            lines.append(f"  {label:<18}" + "".join(f"{'n/a' if v is None else f'{v:.2f}':>8}" for v in cells))
        if self.plain.test_dists and self.adjusted.test_dists:
            lines.append(f"  {'top-1 on':<18}{'plain':>8}{'adjusted':>10}")
            lines += [f"  {name:<18}{value:>8.2f}{self.adjusted.test_dists[name]:>10.2f}"
                      for name, value in self.plain.test_dists.items()]
        return "\n".join(lines)


def score_taus(heldout: Predictions, classifier: nn.Module, train_counts: Sequence[int] | np.ndarray, kind: str,
               taus: Sequence[float]) -> tuple[list[float], float]:
    """Class-balanced accuracy (%) of ``kind`` at each τ on held-out predictions, and the smallest best τ."""
    if kind not in POSTHOC_KINDS:
        raise ValueError(f"unknown post-hoc adjustment {kind!r}; choose one of {', '.join(POSTHOC_KINDS)}")
    if not taus:
        raise ValueError("the τ grid is empty")
    labels = heldout.labels.numpy()
    present = np.flatnonzero(np.bincount(labels, minlength=len(train_counts)))
    scores = []
    for tau in taus:
        logits = posthoc_logits(heldout, classifier, train_counts, **{kind: float(tau)})
        correct = logits.argmax(dim=1).numpy() == labels
        scores.append(float(100.0 * np.mean([correct[labels == cls].mean() for cls in present])))
    return scores, float(taus[int(np.argmax(scores))])


def sweep(
    name: str,
    kind: str,
    taus: Sequence[float] = TAU_GRID,
    *,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = True,
    cache: bool = True,
    test_dists: Sequence[str] = (),
) -> SweepResult:
    """Score ``kind`` ("logit_adjust" or "tau_norm") at each τ on the held-out split, then the test set at the best."""
    common = dict(pretrained=pretrained, checkpoint=checkpoint, data_dir=data_dir, batch_size=batch_size,
                  progress=progress, cache=cache)
    if kind not in POSTHOC_KINDS:  # before any model runs
        raise ValueError(f"unknown post-hoc adjustment {kind!r}; choose one of {', '.join(POSTHOC_KINDS)}")
    heldout = model_predictions(name, split="heldout", **common)
    scores, best_tau = score_taus(heldout.predictions, heldout.model.get_classifier(), heldout.train_counts, kind, taus)
    test = model_predictions(name, split="test", **common)
    return SweepResult(
        name=test.name, kind=kind, taus=[float(t) for t in taus], heldout_top1=scores, heldout_source=heldout.source,
        best_tau=best_tau, plain=test.result(test_dists=test_dists),
        adjusted=test.result(test_dists=test_dists, **{kind: best_tau}),
    )
