"""SMCL, saliency masked contrastive learning (docs/methods/smcl.md §3): mask the salient part of a background image
with minority content, train L_MCE on the masked images and pull them toward their minority class with L_MSC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment.paired import PairedBatch, PairedMinorityEngine
from ..data.loader import Batch
from ..losses import SupConLoss
from ..registry import Recipe, cifar_recipes, register_method
from .cmo import PairedMinorityMethod

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


class SMCL(PairedMinorityMethod):
    """SMCL-paste (docs/methods/smcl.md §3.2), every switch of §3.4 a constructor option.

    Augmented step: x̃ = x with a Beta box around its saliency peak replaced by the minority image x'; one
    forward over [x̃ ; x'] (2B); L = L_MCE(x̃; y, y', λ̂) + w_msc · SupCon over the projections, x̃ and x' both
    labelled y'. Plain step: L = ℓ(f(x), y). With w_msc = 0 only x̃ is forwarded, which is exactly CMO.
    """

    name = "smcl"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        base_loss: str = "ce_drw",
        drw_start: int = 160,
        drw_beta: float = 0.9999,
        max_margin: float = 0.5,
        scale: float = 30.0,
        minor_sampler: str = "effnum",
        effnum_beta: float = 0.9999,
        saliency: str = "cam",
        cam_target: str = "label",
        box_scope: str = "per_image",
        fill: str = "paste",
        contrast_set: str = "masked+minor",
        msc_labels: str = "hard_minor",
        msc_always: bool = False,
        w_msc: float = 1.0,
        tau: float = 0.07,
        proj: str = "mlp",
        p_aug: float = 0.5,
        aug_start: int = 3,
        aug_end: int = 3,
        box_beta: float = 1.0,
    ) -> None:
        for name, value, allowed in (("saliency", saliency, SALIENCY), ("contrast_set", contrast_set, CONTRAST_SETS),
                                     ("msc_labels", msc_labels, MSC_LABELS), ("proj", proj, PROJECTIONS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        engine = PairedMinorityEngine(
            epochs, minor_sampler=minor_sampler, effnum_beta=effnum_beta,
            region="random_box" if saliency == "random" else "saliency_box",
            saliency="cam" if saliency == "random" else saliency, cam_target=cam_target, box_scope=box_scope,
            fill=fill, label="area", p_aug=p_aug, aug_start=aug_start, aug_end=aug_end, box_beta=box_beta,
        )
        super().__init__(class_counts, epochs, engine, base_loss, drw_start, drw_beta, max_margin, scale)
        self.with_original = contrast_set == "masked+original+minor"
        self.msc_labels, self.msc_always, self.w_msc, self.proj = msc_labels, msc_always, w_msc, proj
        self.supcon = SupConLoss(temperature=tau)

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
