"""LSM, saliency-guided local semantic mixing (docs/methods/lsm.md), as a plug-in on the CE / CE-DRW / LDAM-DRW base
losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..augment.lsm import HEAD_WEIGHTS, MASK_RULES, LSMPatchRegion
from ..augment.paired import PairedMinorityEngine, PairedMixing
from ..data.samplers import check_sampler_kind
from ..options import check_choice, check_number
from ..registry import Recipe, cifar_recipes, register_method
from .paired import PairedMinorityMethod, PairedOptions

TAIL_SAMPLERS = ("class_balanced", "reversed")  # docs/methods/lsm.md §3 step 0, as ltzoo.data.samplers kinds
CAM_SOURCES = ("current",)


@dataclass(frozen=True)
class LSMOptions(PairedOptions):
    """LSM's options, in the paper's names: the tail sampler, the gate (mix_start < e < E − mix_end, u < p_mix),
    the Beta(mix_beta, mix_beta) of the unit budget, and the unit mask and label weights of `LSMPatchRegion`."""

    base_loss: str = "ce"
    tail_sampler: str = "class_balanced"
    patch_size: int = 4
    mask_rule: str = "topk_beta"
    mix_beta: float = 1.0
    head_weight: str = "saliency"
    normalise: bool = True
    p_mix: float = 0.5
    mix_start: int = 3
    mix_end: int = 3
    cam_source: str = "current"

    def __post_init__(self) -> None:
        check_sampler_kind(self.tail_sampler, "tail_sampler", TAIL_SAMPLERS)
        for option, allowed in (("mask_rule", MASK_RULES), ("head_weight", HEAD_WEIGHTS),
                                ("cam_source", CAM_SOURCES)):
            check_choice(option, getattr(self, option), allowed)
        check_number("patch_size", self.patch_size, 1, integer=True)
        check_number("mix_beta", self.mix_beta, 0, low_open=True)
        check_number("p_mix", self.p_mix, 0, 1)
        check_number("mix_start", self.mix_start, -1, integer=True)  # -1: mixing from epoch 0
        check_number("mix_end", self.mix_end, 0, integer=True)
        super().__post_init__()

    def mixing(self) -> PairedMixing:
        """The engine's `patch_topk` region with LSM's gate and tail stream."""
        return PairedMixing(minor_sampler=self.tail_sampler, region="patch_topk", p_aug=self.p_mix,
                            aug_start=self.mix_start, aug_end=self.mix_end, box_beta=self.mix_beta)


class LSMMethod(PairedMinorityMethod):
    """The base loss ℓ (+ DRW) on x_mix, the head batch with the tail's top-K Grad-CAM units pasted in place:
    L = Σ w̄_h c_{y_h} ℓ(·, y_h)/Σ c_{y_h} + Σ w̄_t c_{y_t} ℓ(·, y_t)/Σ c_{y_t}; the base step when the gate is shut.

    The gate (mix_start < e < E − mix_end, u < p_mix), the class-aware tail stream and the pasting are the paired
    engine's (docs/methods/baselines.md §6); the unit mask and label weights are `LSMPatchRegion`'s. No parameters are
    added.
    """

    name = "lsm"
    Options = LSMOptions

    def __init__(self, class_counts: Sequence[int], epochs: int, **options: Any) -> None:
        opts = LSMOptions(**options)
        region = LSMPatchRegion(opts.patch_size, opts.mask_rule, opts.head_weight, opts.normalise)
        super().__init__(class_counts, epochs, PairedMinorityEngine(epochs, opts.mixing(), patch_region=region), opts)


_LSM_CIFAR10 = ("the LSM paper reports no CIFAR-10-LT setting; this is its CIFAR-100-LT recipe with the CIFAR-LT "
                "baselines' lr 0.1 instead of 0.01 and mixing up to the last epoch instead of CMO's gate, both of "
                "which measured better on CIFAR-10-LT IF 100")
_LSM_RECIPES = (*cifar_recipes(cifar10=_LSM_CIFAR10), Recipe("resnet50", "imagenet_lt", ("e100",)),
                Recipe("resnet50", "inat2018", ("e200",)))
_LSM_PAPER = "doi:10.3390/make7030107"
register_method("ce_lsm", LSMMethod, title="Cross-entropy + saliency-guided local semantic mixing", paper=_LSM_PAPER,
                options={"base_loss": "ce"}, recipes=_LSM_RECIPES)
register_method("ce_drw_lsm", LSMMethod, title="CE-DRW + saliency-guided local semantic mixing", paper=_LSM_PAPER,
                options={"base_loss": "ce_drw"}, base="ce_drw", recipes=_LSM_RECIPES)
register_method("ldam_drw_lsm", LSMMethod, title="LDAM-DRW + saliency-guided local semantic mixing", paper=_LSM_PAPER,
                options={"base_loss": "ldam_drw"}, classifier="cosine", cosine_scale=30.0, base="ldam_drw",
                recipes=_LSM_RECIPES)
