"""The supervised baselines: CE, CE-DRW, LDAM-DRW and Balanced Softmax, one loss on one view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.loader import Batch
from ..losses import BalancedSoftmaxLoss, ClassificationLoss, CrossEntropyLoss, DeferredReweighting, LDAMLoss
from ..models import NormedLinear
from ..options import check_choice, check_number
from .base import TrainingMethod, unwrap

BASE_LOSSES = ("ce", "ldam", "bs")


def build_base_loss(
    name: str, class_counts: Sequence[int], max_margin: float = 0.5, scale: float = 30.0
) -> ClassificationLoss:
    """The per-target loss ℓ of a base method: `ce`, `ldam` (cosine classifier) or `bs` (balanced softmax)."""
    if name == "ce":
        return CrossEntropyLoss()
    if name == "ldam":
        return LDAMLoss(class_counts, max_margin=max_margin, scale=scale)
    if name == "bs":
        return BalancedSoftmaxLoss(class_counts)
    raise ValueError(f"unknown base loss {name!r}; choose one of {', '.join(BASE_LOSSES)}")


def check_classifier(model: nn.Module, loss: ClassificationLoss) -> None:
    """LDAM's margins are defined on s·cosine logits: refuse any other head, where it would train, wrongly."""
    if not isinstance(loss, LDAMLoss):
        return
    head = unwrap(model).get_classifier()
    if not isinstance(head, NormedLinear) or head.scale != loss.scale:
        have = (f"a cosine classifier of scale {head.scale:g}" if isinstance(head, NormedLinear)
                else "a linear classifier")
        raise ValueError(f"the LDAM loss needs the cosine classifier with its scale s = {loss.scale:g}, and this model "
                         f"has {have}: add `model: {{classifier: cosine, cosine_scale: {loss.scale:g}}}` to the "
                         "config (LDAM zoo entries have it already)")


class SupervisedMethod(TrainingMethod):
    """L = ℓ(f(x), y) with optional deferred re-weighting of ℓ from epoch `drw_start` (β = `drw_beta`)."""

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        loss: str = "ce",
        drw_start: int | None = None,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float = 30.0,
    ) -> None:
        self.check_options({"loss": loss, "drw_start": drw_start, "drw_beta": drw_beta, "max_margin": max_margin,
                            "scale": scale})
        super().__init__(class_counts, epochs)
        self.loss = build_base_loss(loss, self.class_counts, max_margin=max_margin, scale=scale)
        self.drw = DeferredReweighting(self.class_counts, drw_start, drw_beta) if drw_start is not None else None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_choice("loss", options["loss"], BASE_LOSSES)
        if options["drw_start"] is not None:
            check_number("drw_start", options["drw_start"], 0, integer=True)
        check_number("drw_beta", options["drw_beta"], 0, 1, high_open=True)
        check_number("max_margin", options["max_margin"], 0, low_open=True)
        check_number("scale", options["scale"], 0, low_open=True)

    def prepare_model(self, model: nn.Module) -> None:
        check_classifier(model, self.loss)

    def on_epoch_start(self, epoch: int) -> None:
        if self.drw is not None:
            self.loss.set_class_weight(self.drw.weights(epoch))

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.images)
        loss = self.loss(logits, batch.labels)
        return loss, {"loss": loss.detach()}
