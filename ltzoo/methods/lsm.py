"""LSM, saliency-guided local semantic mixing (docs/methods/lsm.md), as a plug-in on the CE / CE-DRW / LDAM-DRW base
losses."""

from __future__ import annotations

from collections.abc import Sequence

from ..augment.lsm import LSMPatchRegion
from ..augment.paired import PairedMinorityEngine
from ..registry import Recipe, cifar_recipes, register_method
from .cmo import PairedMinorityMethod

# docs/methods/lsm.md §3 step 0 sampler name -> the paired engine's name for the same distribution
TAIL_SAMPLERS = {"class_uniform": "cmo_uniform", "reversed": "reversed"}
CAM_SOURCES = ("current",)


class LSMMethod(PairedMinorityMethod):
    """The base loss ℓ (+ DRW) on x_mix, the head batch with the tail's top-K Grad-CAM units pasted in place:
    L = Σ w̄_h c_{y_h} ℓ(·, y_h)/Σ c_{y_h} + Σ w̄_t c_{y_t} ℓ(·, y_t)/Σ c_{y_t}; the base step when the gate is shut.

    The gate (mix_start < e < E − mix_end, u < p_mix), the class-aware tail stream and the pasting are the paired
    engine's (docs/methods/baselines.md §6); the unit mask and label weights are `LSMPatchRegion`'s. No parameters are
    added.
    """

    name = "lsm"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        base_loss: str = "ce",
        drw_start: int = 160,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float = 30.0,
        tail_sampler: str = "class_uniform",
        patch_size: int = 4,
        mask_rule: str = "topk_beta",
        mix_beta: float = 1.0,
        head_weight: str = "saliency",
        normalise: bool = True,
        p_mix: float = 0.5,
        mix_start: int = 3,
        mix_end: int = 3,
        cam_source: str = "current",
    ) -> None:
        if tail_sampler not in TAIL_SAMPLERS:
            raise ValueError(f"unknown tail sampler {tail_sampler!r}; choose one of {', '.join(TAIL_SAMPLERS)}")
        if cam_source not in CAM_SOURCES:
            raise ValueError(f"unknown cam source {cam_source!r}; choose one of {', '.join(CAM_SOURCES)}")
        engine = PairedMinorityEngine(
            epochs, minor_sampler=TAIL_SAMPLERS[tail_sampler], region="patch_topk", p_aug=p_mix, aug_start=mix_start,
            aug_end=mix_end, box_beta=mix_beta,
            patch_region=LSMPatchRegion(patch_size, mask_rule, head_weight, normalise),
        )
        super().__init__(class_counts, epochs, engine, base_loss, drw_start, drw_beta, max_margin, scale)


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
