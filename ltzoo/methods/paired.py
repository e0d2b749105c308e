"""The base every paired-minority method (CMO, SMCL, LSM) shares: a base loss ℓ with optional deferred re-weighting,
plus a `PairedMinorityEngine` (docs/methods/baselines.md §6), and the options object its subclasses extend."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..augment.paired import PairedBatch, PairedMinorityEngine, PairedMixing
from ..data.loader import Batch
from ..losses import ClassificationLoss, DeferredReweighting, mixed_label_loss
from ..options import check_choice, check_number
from .base import TrainingMethod, TrainSet, unwrap
from .supervised import build_base_loss, check_classifier, unused_base_options

# base-loss name of CMO / SMCL / LSM recipes -> (per-target loss ℓ, deferred re-weighting on?)
PAIRED_BASE_LOSSES: dict[str, tuple[str, bool]] = {
    "ce": ("ce", False), "ce_drw": ("ce", True), "ldam_drw": ("ldam", True), "bs": ("bs", False),
}


@dataclass(frozen=True)
class PairedOptions:
    """The options every paired-minority method takes (the base loss and its DRW), checked when built; a method's
    own options subclass this and say, in `mixing()`, which `PairedMixing` they configure. The config's flat
    `method:` keys are this object's fields."""

    base_loss: str = "ce_drw"
    drw_start: int = 160
    drw_beta: float = 0.9999
    max_margin: float = 0.5
    scale: float = 30.0

    def __post_init__(self) -> None:
        check_choice("base_loss", self.base_loss, tuple(PAIRED_BASE_LOSSES))
        check_number("drw_start", self.drw_start, 0, integer=True)
        check_number("drw_beta", self.drw_beta, 0, 1, high_open=True)
        check_number("max_margin", self.max_margin, 0, low_open=True)
        check_number("scale", self.scale, 0, low_open=True)
        self.mixing()  # the engine's checks, before any data

    def mixing(self) -> PairedMixing:
        """The engine configuration these options select."""
        raise NotImplementedError


class PairedMinorityMethod(TrainingMethod):
    """A base loss ℓ (`ce`, `ce_drw`, `ldam_drw` with a cosine classifier, `bs`) plus a `PairedMinorityEngine`.

    DRW bases weight ℓ from epoch `drw_start` with β = `drw_beta`; the engine's minority stream is bound to
    the training split and re-seeded every epoch. A subclass names its options type in `Options`; its constructor
    takes those options as keywords (the config's flat `method:` keys).
    """

    Options: ClassVar[type[PairedOptions]] = PairedOptions

    def __init__(self, class_counts: Sequence[int], epochs: int, engine: PairedMinorityEngine,
                 options: PairedOptions) -> None:
        super().__init__(class_counts, epochs)
        loss_name, deferred = PAIRED_BASE_LOSSES[options.base_loss]
        self.options = options
        self.loss: ClassificationLoss = build_base_loss(loss_name, self.class_counts, options.max_margin,
                                                        options.scale)
        self.drw = (DeferredReweighting(self.class_counts, options.drw_start, options.drw_beta) if deferred
                    else None)
        self.engine = engine

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls.Options)}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        cls.Options(**options)

    @classmethod
    def unused_options(cls, options: Mapping[str, Any]) -> dict[str, str]:
        if options["base_loss"] not in PAIRED_BASE_LOSSES:
            return {}  # check_options names the choices
        return unused_base_options(*PAIRED_BASE_LOSSES[options["base_loss"]])

    def prepare_model(self, model: nn.Module) -> None:
        check_classifier(model, self.loss)

    def bind_data(self, train_set: TrainSet) -> None:
        self.engine.bind_data(train_set, self.cifar_transform(train_set.mean, train_set.std))

    def on_epoch_start(self, epoch: int) -> None:
        if self.drw is not None:
            self.loss.set_class_weight(self.drw.weights(epoch))
        self.engine.set_epoch(epoch)

    def draw_pair(self, model: nn.Module, batch: Batch, epoch: int, keep_minor: bool = False
                  ) -> tuple[PairedBatch | None, Batch | None]:
        """This step's (mixed batch or None when the gate is closed, minority batch or None when none was drawn);
        `keep_minor` draws a minority batch in every step, also outside the augmentation epochs."""
        minor = self.engine.draw_minor(epoch, always=keep_minor)
        if minor is None or not self.engine.gate(epoch):
            return None, minor
        return self.engine.mix(unwrap(model), batch.images, batch.labels, minor), minor

    def mixed_loss(self, logits: torch.Tensor, paired: PairedBatch) -> torch.Tensor:
        """L_MCE = Σ λ̂_i w_{y_i} ℓ(·, y_i)/Σ w_{y_i} + Σ λ̂'_i w_{y'_i} ℓ(·, y'_i)/Σ w_{y'_i}
        (docs/methods/baselines.md §4.1), with λ̂' = 1 − λ̂ except for LSM's unnormalised label weights."""
        return mixed_label_loss(self.loss, logits, paired.labels, paired.minor_labels, paired.lam, paired.minor_lam)

    def plain_step(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """L = ℓ(f(x), y) on the background batch."""
        loss = self.loss(model(batch.images), batch.labels)
        return loss, {"loss": loss.detach(), "augmented": 0.0}

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, Any]]:
        paired, _ = self.draw_pair(model, batch, epoch)
        if paired is None:
            return self.plain_step(model, batch)
        loss = self.mixed_loss(model(paired.images), paired)
        return loss, {"loss": loss.detach(), "augmented": 1.0}


__all__ = ["PAIRED_BASE_LOSSES", "PairedMinorityMethod", "PairedOptions"]
