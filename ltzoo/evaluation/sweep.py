"""Choose a post-hoc τ on a held-out split of the TRAINING data, then report the test set at that τ.

The test set is never used to pick τ: each τ of the grid is scored by top-1 on the benchmark's held-out split
(``validate``'s ``split="heldout"``: for CIFAR-LT, balanced images of the training set that the long-tailed subset
left out; for the large-scale benchmarks, their ``val`` list). The smallest τ with the best held-out top-1 wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltzoo.evaluate import EvalResult
from ltzoo.evaluation.posthoc import POSTHOC_KINDS, TAU_GRID, posthoc_logits
from ltzoo.validate import model_predictions

__all__ = ["SweepResult", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    """Held-out top-1 for each τ, the chosen τ, and the test metrics with and without the adjustment."""

    name: str
    kind: str
    taus: list[float]
    heldout_top1: list[float]
    heldout_source: str
    best_tau: float
    plain: EvalResult
    adjusted: EvalResult

    def format_report(self) -> str:
        """The τ grid with held-out top-1 (the chosen τ marked), then the test metrics plain vs. adjusted."""
        lines = [f"{self.name}: {self.kind} τ sweep on the held-out split (never the test set):",
                 f"  held-out: {self.heldout_source}", f"  {'τ':>5}  held-out top-1"]
        for tau, top1 in zip(self.taus, self.heldout_top1):
            lines.append(f"  {tau:>5.2f}  {top1:>8.2f} %" + ("   <- chosen" if tau == self.best_tau else ""))
        lines.append(f"test set at the chosen τ = {self.best_tau:g}:")
        lines.append(f"  {'':<18}{'top-1':>8}{'many':>8}{'medium':>8}{'few':>8}{'ECE':>8}")
        for label, result in (("plain", self.plain), (f"{self.kind} τ={self.best_tau:g}", self.adjusted)):
            cells = [result.top1, result.many, result.medium, result.few, result.ece]
            lines.append(f"  {label:<18}" + "".join(f"{'n/a' if v is None else f'{v:.2f}':>8}" for v in cells))
        return "\n".join(lines)


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
    if kind not in POSTHOC_KINDS:
        raise ValueError(f"unknown post-hoc adjustment {kind!r}; choose one of {', '.join(POSTHOC_KINDS)}")
    if not taus:
        raise ValueError("the τ grid is empty")
    common = dict(pretrained=pretrained, checkpoint=checkpoint, data_dir=data_dir, batch_size=batch_size,
                  progress=progress, cache=cache)
    heldout = model_predictions(name, split="heldout", **common)
    labels = heldout.predictions.labels
    scores = []
    for tau in taus:
        logits = posthoc_logits(heldout.predictions, heldout.model.get_classifier(), heldout.train_counts,
                                **{kind: float(tau)})
        scores.append(float(100.0 * (logits.argmax(dim=1) == labels).double().mean()))
    best_tau = float(taus[int(np.argmax(scores))])
    test = model_predictions(name, split="test", **common)
    return SweepResult(
        name=test.name, kind=kind, taus=[float(t) for t in taus], heldout_top1=scores, heldout_source=heldout.source,
        best_tau=best_tau, plain=test.result(test_dists=test_dists),
        adjusted=test.result(test_dists=test_dists, **{kind: best_tau}),
    )
