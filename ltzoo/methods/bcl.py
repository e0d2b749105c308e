"""BCL, balanced contrastive learning (docs/methods/concutmix.md §2): L = α·LA-CE(v0) + β·L_BCL(v1, v2, prototypes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment.views import CL_VIEWS, MultiImageView, bcl_cifar_views, bcl_image_views
from ..benchmarks import IMAGENET_MEAN
from ..data.batch_transforms import BatchTransform
from ..data.loader import Batch
from ..losses import BalancedContrastiveLoss, LogitAdjustedLoss, upcast
from ..options import check_choice, check_number
from ..registry import Recipe, cifar_recipes, register_method
from .base import TrainingMethod

CONTRASTIVE_HEAD = "head"
PROTOTYPE_HEAD = "head_fc"


@dataclass
class BCLForward:
    """One forward of [v0 (B); v1 (B); v2 (B)] with the training-only heads."""

    logits: Tensor  # (B, C) logits s of v0
    projections: Tensor  # (B, feat) unnormalised head(h) of v0 (ConCutMix's u)
    embeddings: Tensor  # (2B, feat) normalised head(h) of v1 then v2: the BCL anchors
    prototypes: Tensor  # (C, feat) normalised head_fc(w_c): p_c
    prototype_projections: Tensor  # (C, feat) unnormalised head_fc(w_c): q_c


class BCLMethod(TrainingMethod):
    """BCL: logit-adjusted CE on the classification view v0 plus the balanced contrastive loss on the two
    contrastive views, with class prototypes from `head_fc` applied to the cosine classifier's class vectors.

    `head` (contrastive projection) and `head_fc` (prototype projection) are training-only heads
    (Linear → BN1d → ReLU → Linear, `head_hidden` → `feat_dim`). `head` runs on all 3B images, so its BN
    statistics cover every view; `head_fc` runs on the C class vectors, so its BN normalises over classes.
    """

    name = "bcl"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        alpha: float = 2.0,
        beta: float = 0.6,
        temperature: float = 0.1,
        tau: float = 1.0,
        feat_dim: int = 128,
        head_hidden: int = 512,
        cl_views: str = "sim-sim",
    ) -> None:
        BCLMethod.check_options({"alpha": alpha, "beta": beta, "temperature": temperature, "tau": tau,
                                 "feat_dim": feat_dim, "head_hidden": head_hidden, "cl_views": cl_views})
        super().__init__(class_counts, epochs)
        self.alpha, self.beta = float(alpha), float(beta)
        self.feat_dim, self.head_hidden, self.cl_views = feat_dim, head_hidden, cl_views
        self.classification = LogitAdjustedLoss(self.class_counts, tau=tau)
        self.contrastive = BalancedContrastiveLoss(temperature)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for weight in ("alpha", "beta", "tau"):
            check_number(weight, options[weight], 0)
        check_number("temperature", options["temperature"], 0, low_open=True)
        check_number("feat_dim", options["feat_dim"], 1, integer=True)
        check_number("head_hidden", options["head_hidden"], 1, integer=True)
        check_choice("cl_views", options["cl_views"], tuple(CL_VIEWS))

    def cifar_transform(self, mean: Sequence[float], std: Sequence[float]) -> BatchTransform:
        """CIFAR views (§3.5): v0 crop + flip + AutoAugment; v1, v2 the contrastive crop/jitter/grayscale/blur."""
        return bcl_cifar_views(mean, std)

    def image_transform(self, mean: Sequence[float], std: Sequence[float], size: int = 224) -> MultiImageView:
        """ImageNet-scale views (§2.2) for a per-image dataset: [randncls, then the two views of `cl_views`]; CIFAR
        always uses `cifar_transform`."""
        return bcl_image_views(mean, std, size, self.cl_views, randaugment_mean=IMAGENET_MEAN)

    def heads_spec(self, num_features: int) -> dict[str, dict[str, Any]]:
        mlp = {"type": "mlp", "in_features": num_features, "hidden": self.head_hidden, "out_features": self.feat_dim,
               "batch_norm": True}
        return {CONTRASTIVE_HEAD: dict(mlp), PROTOTYPE_HEAD: dict(mlp)}

    def model_outputs(self, model: nn.Module, images: Tensor) -> dict[str, Tensor]:
        """One forward with `head` on the features and `head_fc` on the (C, d) class vectors of the cosine `fc`
        (q_c = head_fc(w_c)), both inside the model's — possibly DDP-wrapped — forward."""
        return model(images, return_features=True, heads=(CONTRASTIVE_HEAD,), class_heads=(PROTOTYPE_HEAD,))

    def forward_views(self, model: nn.Module, classification_view: Tensor, view1: Tensor, view2: Tensor) -> BCLForward:
        """One forward of the concatenated views through `model` (DDP-safe), then `head` on all 3B features."""
        batch = classification_view.shape[0]
        out = self.model_outputs(model, torch.cat([classification_view, view1, view2]))
        projections, raw_prototypes = out[CONTRASTIVE_HEAD], out[PROTOTYPE_HEAD]
        prototypes = F.normalize(upcast(raw_prototypes), dim=1)
        return BCLForward(
            logits=out["logits"][:batch],
            projections=projections[:batch],
            embeddings=F.normalize(upcast(projections[batch:]), dim=1),
            prototypes=prototypes,
            prototype_projections=raw_prototypes,
        )

    def contrastive_loss(self, forward: BCLForward, labels: Tensor) -> Tensor:
        """L_BCL with anchors [v1 of all B; v2 of all B] and labels y repeated twice."""
        return self.contrastive(forward.embeddings, labels.repeat(2), forward.prototypes)

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict[str, float]]:
        view0, view1, view2 = three_views(batch)
        forward = self.forward_views(model, view0, view1, view2)
        ce = self.classification(forward.logits, batch.labels)
        bcl = self.contrastive_loss(forward, batch.labels)
        loss = self.alpha * ce + self.beta * bcl
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "bcl": bcl.detach()}


def three_views(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """The (v0, v1, v2) views of a BCL / ConCutMix batch; a clear error for a single-view loader."""
    if not isinstance(batch.images, (tuple, list)) or len(batch.images) != 3:
        raise TypeError("BCL and ConCutMix need three views per image (v0, v1, v2): build the training loader with "
                        "the method's `cifar_transform` (CIFAR) or `image_transform` (per-image datasets)")
    return batch.images[0], batch.images[1], batch.images[2]


register_method("bcl", BCLMethod, title="Balanced contrastive learning", paper="arXiv:2207.09052", classifier="cosine",
                cosine_scale=30.0, recipes=(*cifar_recipes(), Recipe("resnet50", "imagenet_lt", ("e90",)),
                                            Recipe("resnext50", "imagenet_lt", ("e90",)),
                                            Recipe("resnet50", "inat2018", ("e100",))))
