"""The supervised baselines: CE, CE-DRW, LDAM-DRW, Balanced Softmax and logit adjustment, one loss on one view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.loader import Batch
from ..losses import (
    BalancedSoftmaxLoss,
    ClassificationLoss,
    CrossEntropyLoss,
    DeferredReweighting,
    LDAMLoss,
    LogitAdjustedLoss,
)
from ..models import NormedLinear
from ..options import check_choice, check_number
from ..registry import Recipe, cifar_recipes, register_method
from .base import TrainingMethod, unwrap

BASE_LOSSES = ("ce", "ldam", "bs", "la")


def build_base_loss(
    name: str, class_counts: Sequence[int], max_margin: float = 0.5, scale: float | None = None, tau: float = 1.0
) -> ClassificationLoss:
    """The per-target loss ℓ of a base method: `ce`, `ldam` (on the cosine classifier of scale `scale`), `bs`
    (balanced softmax) or `la` (logit-adjusted CE with temperature `tau`)."""
    if name == "ce":
        return CrossEntropyLoss()
    if name == "ldam":
        if scale is None:
            raise ValueError("the LDAM loss needs the scale s of its cosine classifier (the method's declaration "
                             "gives it: build the method with ltzoo.methods.build_method)")
        return LDAMLoss(class_counts, max_margin=max_margin, scale=scale)
    if name == "bs":
        return BalancedSoftmaxLoss(class_counts)
    if name == "la":
        return LogitAdjustedLoss(class_counts, tau=tau)
    raise ValueError(f"unknown base loss {name!r}; choose one of {', '.join(repr(n) for n in BASE_LOSSES)}")


def unused_base_options(loss: str, drw: bool) -> dict[str, str]:
    """The base-loss options that do nothing for this loss and DRW setting, each with the reason."""
    unused = {}
    if not drw:
        unused.update(drw_start="deferred re-weighting is off", drw_beta="deferred re-weighting is off")
    if loss != "ldam":
        unused["max_margin"] = f"the {loss} loss has no margin"
        unused["scale"] = f"the {loss} loss has no cosine classifier to scale"
    return unused


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
    """L = ℓ(f(x), y), with deferred re-weighting of ℓ from epoch `drw_start` (β = `drw_beta`) when `drw` is on."""

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        loss: str = "ce",
        drw: bool = False,
        drw_start: int = 160,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float | None = None,
        tau: float = 1.0,
    ) -> None:
        self.check_options({"loss": loss, "drw": drw, "drw_start": drw_start, "drw_beta": drw_beta,
                            "max_margin": max_margin, "scale": scale, "tau": tau})
        super().__init__(class_counts, epochs)
        self.loss = build_base_loss(loss, self.class_counts, max_margin=max_margin, scale=scale, tau=tau)
        self.drw = DeferredReweighting(self.class_counts, drw_start, drw_beta) if drw else None

    @classmethod
    def unused_options(cls, options: Mapping[str, Any]) -> dict[str, str]:
        unused = unused_base_options(options["loss"], options["drw"])
        if options["loss"] != "la":
            unused["tau"] = f"the {options['loss']} loss has no logit-adjustment temperature"
        return unused

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_choice("loss", options["loss"], BASE_LOSSES)
        check_choice("drw", options["drw"], (True, False))
        check_number("drw_start", options["drw_start"], 0, integer=True)
        check_number("drw_beta", options["drw_beta"], 0, 1, high_open=True)
        check_number("max_margin", options["max_margin"], 0, low_open=True)
        if options["scale"] is not None:
            check_number("scale", options["scale"], 0, low_open=True)
        check_number("tau", options["tau"], 0)

    def prepare_model(self, model: nn.Module) -> None:
        check_classifier(model, self.loss)

    def on_epoch_start(self, epoch: int) -> None:
        if self.drw is not None:
            self.loss.set_class_weight(self.drw.weights(epoch))

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.images)
        loss = self.loss(logits, batch.labels)
        return loss, {"loss": loss.detach()}


_BASELINE_RECIPES = (Recipe("resnet50", "imagenet_lt", ("e100",)), Recipe("resnet50", "inat2018", ("e100",)))
_DRW_RECIPES = (Recipe("resnet50", "imagenet_lt", ("e100",)), Recipe("resnet50", "inat2018", ("e200",)))
_PLACES = Recipe("resnet152", "places_lt", ("e30",), model_args={"embed_dim": 512})

register_method("ce", SupervisedMethod, title="Cross-entropy", paper="arXiv:1906.07413",
                options={"loss": "ce", "drw": False}, base=None,
                recipes=(*cifar_recipes(), *_BASELINE_RECIPES, _PLACES))
register_method("ce_drw", SupervisedMethod, title="Cross-entropy with deferred re-weighting", paper="arXiv:1906.07413",
                options={"loss": "ce", "drw": True}, recipes=(*cifar_recipes(), *_DRW_RECIPES))
register_method("ldam_drw", SupervisedMethod, title="LDAM loss with deferred re-weighting", paper="arXiv:1906.07413",
                options={"loss": "ldam", "drw": True}, classifier="cosine", cosine_scale=30.0,
                recipes=(*cifar_recipes(), *_DRW_RECIPES))
register_method("bsce", SupervisedMethod, title="Balanced Softmax cross-entropy", paper="arXiv:2007.10740",
                options={"loss": "bs", "drw": False}, recipes=(*cifar_recipes(), *_BASELINE_RECIPES, _PLACES))
register_method(
    "la", SupervisedMethod, title="Logit-adjusted cross-entropy", paper="arXiv:2007.07314",
    options={"loss": "la", "drw": False},
    recipes=cifar_recipes("the LA paper's own code trains CIFAR-LT (IF 100 only) for 1241 / 1419 epochs with Nesterov "
                          "SGD and a 20-epoch warm-up; this is the zoo's CE-baseline recipe (200 epochs, LDAM-DRW "
                          "schedule) with the logit-adjusted loss, so that LA compares with CE and its other baselines "
                          "on equal terms"),
)
