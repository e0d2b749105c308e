"""CMO, context-rich minority oversampling (docs/methods/baselines.md §6): the paired-minority engine in its plain
configuration on a base loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..augment.paired import PairedMinorityEngine, PairedMixing
from ..registry import Recipe, cifar_recipes, register_method
from .paired import PairedMinorityMethod, PairedOptions


@dataclass(frozen=True)
class CMOOptions(PairedOptions):
    """CMO's options: the base loss's and the gate's, the minority sampler and the Beta of the box area."""

    minor_sampler: str = "class_balanced"
    p_aug: float = 0.5
    aug_start: int = 3
    aug_end: int = 3
    box_beta: float = 1.0

    def mixing(self) -> PairedMixing:
        """One uniformly placed box per batch, pasted, labels weighted by area."""
        return PairedMixing(minor_sampler=self.minor_sampler, region="random_box", box_scope="per_batch",
                            fill="paste", label="area", p_aug=self.p_aug, aug_start=self.aug_start,
                            aug_end=self.aug_end, box_beta=self.box_beta)


class CMO(PairedMinorityMethod):
    """CMO: in epochs 3 < e < E − 3, with probability 0.5 per batch, paste one random Beta(1, 1) box of a
    class-uniform minority batch into the batch and train on L = λ̂ ℓ(f(x̃), y) + (1 − λ̂) ℓ(f(x̃), y')."""

    name = "cmo"
    Options = CMOOptions

    def __init__(self, class_counts: Sequence[int], epochs: int, **options: Any) -> None:
        opts = CMOOptions(**options)
        super().__init__(class_counts, epochs, PairedMinorityEngine(epochs, opts.mixing()), opts)


register_method(
    "cmo", CMO, title="Context-rich minority oversampling (on CE-DRW)", paper="arXiv:2112.00412",
    options={"base_loss": "ce_drw"}, base="ce_drw",
    recipes=(*cifar_recipes(cifar10="the CMO code trains CIFAR-100-LT only; this is its CIFAR-100-LT recipe"),
             Recipe("resnet50", "imagenet_lt", ("e100",),
                    ltzoo_recipe="the CMO README trains ImageNet-LT with Balanced Softmax; this CE-DRW recipe takes "
                                 "the rest from its imagenet_train.py (100 epochs, batch 128, DRW from epoch 80)")),
)
