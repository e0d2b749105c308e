"""SMCL, saliency masked contrastive learning (docs/methods/smcl.md §3): mask the salient part of a background image
with minority content, train L_MCE on the masked images and pull them toward their minority class with L_MSC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment.paired import PairedBatch, PairedMinorityEngine, PairedMixing
from ..data.loader import Batch
from ..losses import SupConLoss
from ..options import check_choice, check_number
from ..registry import Recipe, cifar_recipes, register_method
from .cmo import CMOOptions
from .paired import PairedMinorityMethod

PROJECTION_HEAD = "proj"
PROJECTION_DIM = 128
SALIENCY = ("cam", "opencv_finegrained", "gradcam", "random")
CONTRAST_SETS = ("masked+minor", "masked+original+minor")
MSC_LABELS = ("hard_minor", "mixed")
PROJECTIONS = ("mlp", "linear")


def contrast_labels(labels: Tensor, minor_labels: Tensor, with_original: bool) -> Tensor:
    """Contrastive labels of [x̃ ; (x) ; x']: the masked and the minority images carry y', the originals y."""
    return torch.cat((minor_labels, labels, minor_labels) if with_original else (minor_labels, minor_labels))


def mixed_positive_mask(contrast: Tensor, labels: Tensor, minor_labels: Tensor, lam: Tensor) -> Tensor:
    """SupCon's real-valued positives: masked anchor a (the first B rows) weighs p by
    m_ap = λ̂_a·1[c_p = y_a] + (1 − λ̂_a)·1[c_p = y'_a]; the other anchors keep m_ap = 1[c_p = c_a]."""
    mask = (contrast.view(-1, 1) == contrast.view(1, -1)).float()
    lam = lam.view(-1, 1).float()
    batch = labels.shape[0]
    mask[:batch] = (lam * (contrast.view(1, -1) == labels.view(-1, 1)).float()
                    + (1.0 - lam) * (contrast.view(1, -1) == minor_labels.view(-1, 1)).float())
    return mask


@dataclass(frozen=True)
class SMCLOptions(CMOOptions):
    """SMCL's options: CMO's (with the effective-number sampler and per-image boxes by default), the saliency box
    (`saliency: random` is CMO's uniform box), and L_MSC's set, labels, weight, temperature and projection."""

    minor_sampler: str = "effective_number"
    effnum_beta: float = 0.9999
    saliency: str = "cam"
    cam_target: str = "label"
    box_scope: str = "per_image"
    fill: str = "paste"
    contrast_set: str = "masked+minor"
    msc_labels: str = "hard_minor"
    msc_always: bool = False
    w_msc: float = 1.0
    tau: float = 0.07
    proj: str = "mlp"

    def __post_init__(self) -> None:
        for option, allowed in (("saliency", SALIENCY), ("contrast_set", CONTRAST_SETS), ("msc_labels", MSC_LABELS),
                                ("proj", PROJECTIONS)):
            check_choice(option, getattr(self, option), allowed)
        check_number("w_msc", self.w_msc, 0)
        check_number("tau", self.tau, 0, low_open=True)
        super().__post_init__()

    def mixing(self) -> PairedMixing:
        """A Beta box around each image's saliency peak (or placed uniformly with `saliency: random`)."""
        random = self.saliency == "random"
        return PairedMixing(minor_sampler=self.minor_sampler, effnum_beta=self.effnum_beta,
                            region="random_box" if random else "saliency_box",
                            saliency="cam" if random else self.saliency, cam_target=self.cam_target,
                            box_scope=self.box_scope, fill=self.fill, label="area",
                            p_aug=self.p_aug, aug_start=self.aug_start, aug_end=self.aug_end, box_beta=self.box_beta)


class SMCL(PairedMinorityMethod):
    """SMCL-paste (docs/methods/smcl.md §3.2), every switch of §3.4 a constructor option.

    Augmented step: x̃ = x with a Beta box around its saliency peak replaced by the minority image x'; one
    forward over [x̃ ; x'] (2B); L = L_MCE(x̃; y, y', λ̂) + w_msc · SupCon over the projections, x̃ and x' both
    labelled y'. Plain step: L = ℓ(f(x), y). With w_msc = 0 only x̃ is forwarded, which is exactly CMO.
    """

    name = "smcl"

    Options = SMCLOptions

    def __init__(self, class_counts: Sequence[int], epochs: int, **options: Any) -> None:
        opts = SMCLOptions(**options)
        super().__init__(class_counts, epochs, PairedMinorityEngine(epochs, opts.mixing()), opts)
        self.with_original = opts.contrast_set == "masked+original+minor"
        self.msc_labels, self.msc_always, self.w_msc = opts.msc_labels, opts.msc_always, opts.w_msc
        self.proj = opts.proj
        self.supcon = SupConLoss(temperature=opts.tau)

    @property
    def contrastive(self) -> bool:
        """Whether L_MSC is on (w_msc > 0): only then are x' forwarded and the projection head built."""
        return self.w_msc > 0

    def heads_spec(self, num_features: int) -> dict[str, dict[str, Any]] | None:
        """The training-only projection head: MLP d → d → 128 (ReLU) or linear d → 128; none when w_msc = 0."""
        if not self.contrastive:
            return None
        if self.proj == "mlp":
            return {PROJECTION_HEAD: {"type": "mlp", "in_features": num_features, "hidden": num_features,
                                      "out_features": PROJECTION_DIM}}
        return {PROJECTION_HEAD: {"type": "linear", "in_features": num_features, "out_features": PROJECTION_DIM}}

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict[str, Any]]:
        paired, minor = self.draw_pair(model, batch, epoch, keep_minor=self.msc_always and self.contrastive)
        if paired is not None:
            return self._masked_step(model, batch, paired)
        if minor is not None and self.msc_always and self.contrastive:
            return self._plain_contrastive_step(model, batch, minor)
        loss, logs = self.plain_step(model, batch)
        return loss, {**logs, "l_msc": 0.0}

    def _embed(self, model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
        """One forward (projection head inside it, for DDP): logits and the L2-normalised projections z."""
        out = model(images, return_features=True, heads=(PROJECTION_HEAD,))
        return out["logits"], F.normalize(out[PROJECTION_HEAD].float(), dim=1)

    def _masked_step(self, model: nn.Module, batch: Batch, paired: PairedBatch) -> tuple[Tensor, dict[str, Any]]:
        """L = L_MCE + w_msc · L_MSC over [x̃ ; (x) ; x'] (docs/methods/smcl.md §3.2 steps 5–6)."""
        if not self.contrastive:
            l_mce = self.mixed_loss(model(paired.images), paired)
            return l_mce, {"loss": l_mce.detach(), "l_msc": 0.0, "augmented": 1.0}
        views = (paired.images, batch.images, paired.minor_images) if self.with_original else (
            paired.images, paired.minor_images)
        logits, z = self._embed(model, torch.cat(views))
        l_mce = self.mixed_loss(logits[: paired.labels.shape[0]], paired)
        contrast = contrast_labels(paired.labels, paired.minor_labels, self.with_original)
        if self.msc_labels == "mixed":
            l_msc = self.supcon(z, mask=mixed_positive_mask(contrast, paired.labels, paired.minor_labels, paired.lam))
        else:
            l_msc = self.supcon(z, labels=contrast)
        loss = l_mce + self.w_msc * l_msc
        return loss, {"loss": loss.detach(), "l_msc": l_msc.detach(), "augmented": 1.0}

    def _plain_contrastive_step(self, model: nn.Module, batch: Batch, minor: Batch) -> tuple[Tensor, dict[str, Any]]:
        """`msc_always`: L = ℓ(f(x), y) + w_msc · SupCon over [x ; x'] with their true labels."""
        size = batch.labels.shape[0]
        minor_images = minor.images[:size].to(batch.images.device)
        minor_labels = minor.labels[:size].to(batch.labels.device)
        logits, z = self._embed(model, torch.cat((batch.images, minor_images)))
        l_ce = self.loss(logits[:size], batch.labels)
        l_msc = self.supcon(z, labels=torch.cat((batch.labels, minor_labels)))
        loss = l_ce + self.w_msc * l_msc
        return loss, {"loss": loss.detach(), "l_msc": l_msc.detach(), "augmented": 0.0}


_SMCL_RECIPE = ("the SMCL paper publishes neither code nor hyper-parameters, so the method's details and this recipe "
                "are ltzoo's reconstruction from its abstract (CMO's recipe plus saliency masking and SupCon; unlike "
                "CMO's gate, it augments up to the last epoch, which measured better on CIFAR-10-LT IF 100)")
register_method("smcl", SMCL, title="Saliency masked contrastive learning", paper="arXiv:2406.02223", base="ce_drw",
                recipes=(*cifar_recipes(_SMCL_RECIPE), Recipe("resnext50", "imagenet_lt", ("e100",)),
                         Recipe("resnet50", "imagenet_lt", ("e100",), ltzoo_recipe=_SMCL_RECIPE)))
