"""CMO, context-rich minority oversampling (docs/methods/baselines.md §6), and the base every paired-minority method
shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..augment.paired import PairedBatch, PairedMinorityEngine
from ..data.loader import Batch
from ..losses import ClassificationLoss, DeferredReweighting, mixed_label_loss
from ..registry import Recipe, cifar_recipes, register_method
from .base import TrainingMethod, TrainSet, unwrap
from .supervised import build_base_loss, check_classifier, unused_base_options

# base-loss name of CMO / SMCL / LSM recipes -> (per-target loss ℓ, deferred re-weighting on?)
PAIRED_BASE_LOSSES: dict[str, tuple[str, bool]] = {
    "ce": ("ce", False), "ce_drw": ("ce", True), "ldam_drw": ("ldam", True), "bs": ("bs", False),
}


class PairedMinorityMethod(TrainingMethod):
    """A base loss ℓ (`ce`, `ce_drw`, `ldam_drw` with a cosine classifier, `bs`) plus a `PairedMinorityEngine`.

    DRW bases weight ℓ from epoch `drw_start` with β = `drw_beta`; the engine's minority stream is bound to
    the training split and re-seeded every epoch.
    """

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        engine: PairedMinorityEngine,
        base_loss: str = "ce_drw",
        drw_start: int = 160,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float = 30.0,
    ) -> None:
        super().__init__(class_counts, epochs)
        if base_loss not in PAIRED_BASE_LOSSES:
            raise ValueError(f"unknown base_loss {base_loss!r}; choose one of {', '.join(PAIRED_BASE_LOSSES)}")
        loss_name, deferred = PAIRED_BASE_LOSSES[base_loss]
        self.loss: ClassificationLoss = build_base_loss(loss_name, self.class_counts, max_margin, scale)
        self.drw = DeferredReweighting(self.class_counts, drw_start, drw_beta) if deferred else None
        self.engine = engine

    @classmethod
    def unused_options(cls, options: Mapping[str, Any]) -> dict[str, str]:
        if options["base_loss"] not in PAIRED_BASE_LOSSES:
            return {}  # the constructor names the choices
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


class CMO(PairedMinorityMethod):
    """CMO: in epochs 3 < e < E − 3, with probability 0.5 per batch, paste one random Beta(1, 1) box of a
    class-uniform minority batch into the batch and train on L = λ̂ ℓ(f(x̃), y) + (1 − λ̂) ℓ(f(x̃), y')."""

    name = "cmo"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        base_loss: str = "ce_drw",
        drw_start: int = 160,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float = 30.0,
        minor_sampler: str = "cmo_uniform",
        p_aug: float = 0.5,
        aug_start: int = 3,
        aug_end: int = 3,
        box_beta: float = 1.0,
    ) -> None:
        engine = PairedMinorityEngine(epochs, minor_sampler=minor_sampler, region="random_box", box_scope="per_batch",
                                      fill="paste", label="area", p_aug=p_aug, aug_start=aug_start, aug_end=aug_end,
                                      box_beta=box_beta)
        super().__init__(class_counts, epochs, engine, base_loss, drw_start, drw_beta, max_margin, scale)


register_method(
    "cmo", CMO, title="Context-rich minority oversampling (on CE-DRW)", paper="arXiv:2112.00412",
    options={"base_loss": "ce_drw"}, base="ce_drw",
    recipes=(*cifar_recipes(cifar10="the CMO code trains CIFAR-100-LT only; this is its CIFAR-100-LT recipe"),
             Recipe("resnet50", "imagenet_lt", ("e100",),
                    ltzoo_recipe="the CMO README trains ImageNet-LT with Balanced Softmax; this CE-DRW recipe takes "
                                 "the rest from its imagenet_train.py (100 epochs, batch 128, DRW from epoch 80)")),
)
