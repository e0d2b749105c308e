"""ConCutMix, contrastive CutMix on BCL (docs/methods/concutmix.md §3): CutMix of v0 with a class-balanced patch image,
whose area label is rectified by prototype similarities after the warm-up epoch E_w."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..augment.boxes import random_centres
from ..augment.concutmix import RHO_NORMS, rectify_label
from ..augment.cutmix import area_label, cutmix_batch
from ..augment.views import cifar_autoaugment_transform
from ..data.loader import ArrayLoader, Batch, BatchedDataLoader, image_loader, with_transform
from ..data.samplers import ClassAwareSampler, ShardedSampler, check_sampler_kind
from ..losses import SoftTargetCrossEntropy
from ..options import check_choice, check_number
from ..registry import CIFAR_TAGS, Recipe, register_method
from .base import TrainSet
from .bcl import BCLForward, BCLMethod, three_views

PATCH_SAMPLERS = ("class_balanced", "reversed")  # ConCutMix's foreground samplers, as ltzoo.data.samplers kinds
PATCH_SEED_OFFSET = 1  # the patch stream's seed is the run seed + 1: never the main loader's stream
_MIX_STREAM = 7  # SeedSequence key of the per-batch draws (gate r, λ0, π, box centre)


class ConCutMixMethod(BCLMethod):
    """BCL + CutMix on the classification view (§3.3), one batch at a time:

    with probability `cutmix_prob`: λ0 ~ Beta(`cutmix_beta`, `cutmix_beta`), a permutation π of the batch and one
    box for the batch; x̃_i = v0(A_i) with the box from v0(B_π(i)), B the class-balanced patch stream; area label
    ỹ_i = λ·e(a_i) + (1 − λ)·e(b_π(i)). CE = soft-target LA-CE with ỹ for epochs e ≤ `warm_epoch`, with the
    rectified y* (§3.4: top-`topk` inverse distances of head(h(x̃)) to head_fc(w_c), weight ρ from ω =
    omega[0]/omega[1] and `rho_norm`) for e > `warm_epoch`. Otherwise CE = LA-CE(v0, a). L = α·CE + β·L_BCL,
    L_BCL on the unmixed v1, v2 only. The per-batch draws are seeded by (seed, epoch), the same on every rank.
    """

    name = "concutmix"

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
        cutmix_prob: float = 0.5,
        cutmix_beta: float = 1.0,
        patch_sampler: str = "class_balanced",
        warm_epoch: int = 100,
        topk: int = 3,
        omega: Sequence[int] = (2, 255),
        rho_norm: str = "sum",
    ) -> None:
        self.check_cutmix_options({"cutmix_prob": cutmix_prob, "cutmix_beta": cutmix_beta,
                                   "patch_sampler": patch_sampler, "warm_epoch": warm_epoch, "topk": topk,
                                   "omega": omega, "rho_norm": rho_norm})
        super().__init__(class_counts, epochs, alpha=alpha, beta=beta, temperature=temperature, tau=tau,
                         feat_dim=feat_dim, head_hidden=head_hidden, cl_views=cl_views)
        if topk > self.num_classes:
            raise ValueError(f"topk must lie in [1, {self.num_classes}] (the number of classes), got {topk}")
        self.cutmix_prob, self.cutmix_beta, self.patch_sampler = cutmix_prob, cutmix_beta, patch_sampler
        self.warm_epoch, self.topk, self.omega, self.rho_norm = warm_epoch, topk, omega[0] / omega[1], rho_norm
        self.soft_classification = SoftTargetCrossEntropy(self.class_counts, tau=tau)
        self._patch_loader: ArrayLoader | BatchedDataLoader | None = None
        self._patch_batches: Iterator[Batch] | None = None
        self._seed = 0
        self._rng = np.random.default_rng()

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        cls.check_cutmix_options(options)

    @staticmethod
    def check_cutmix_options(options: Mapping[str, Any]) -> None:
        """ConCutMix's own options (BCL's are BCLMethod's); `topk` <= the number of classes needs the data."""
        check_number("cutmix_prob", options["cutmix_prob"], 0, 1)
        check_number("cutmix_beta", options["cutmix_beta"], 0, low_open=True)
        check_sampler_kind(options["patch_sampler"], "patch_sampler", PATCH_SAMPLERS)
        check_number("warm_epoch", options["warm_epoch"], 0, integer=True)
        check_number("topk", options["topk"], 1, integer=True)
        omega = options["omega"]
        if (not isinstance(omega, (list, tuple)) or len(omega) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in omega) or omega[1] <= 0):
            raise ValueError(f"omega must be [numerator, denominator], denominator positive (e.g. [2, 255]), "
                             f"got {omega!r}")
        check_choice("rho_norm", options["rho_norm"], RHO_NORMS)

    def bind_data(self, train_set: TrainSet) -> None:
        """The patch (foreground) stream: |D| class-aware draws per epoch, v0 view only (AutoAugment on CIFAR arrays,
        the `randncls` pipeline on a per-image dataset), sharded like the main loader."""
        seed = train_set.seed + PATCH_SEED_OFFSET
        sampler = ClassAwareSampler(train_set.labels, kind=self.patch_sampler,
                                    num_samples=len(train_set.labels), seed=seed)
        if train_set.images is not None:
            self._patch_loader = ArrayLoader(
                train_set.images, train_set.labels, train_set.batch_size,
                cifar_autoaugment_transform(train_set.mean, train_set.std), sampler=sampler, seed=seed,
                rank=train_set.rank, world_size=train_set.world_size, channels_last=train_set.channels_last,
                device=train_set.device)
        else:
            view0 = self.image_transform(train_set.mean, train_set.std).views[0]
            loader = image_loader(with_transform(train_set.dataset, view0), train_set.batch_size,
                                  train_set.num_workers, train_set.device,
                                  sampler=ShardedSampler(sampler, train_set.rank, train_set.world_size))
            self._patch_loader = BatchedDataLoader(loader, train_set.channels_last, train_set.device)
        self._seed = train_set.seed

    def on_epoch_start(self, epoch: int) -> None:
        if self._patch_loader is None:
            raise RuntimeError("ConCutMixMethod.bind_data(train_set) must run before training")
        self._patch_loader.set_epoch(epoch)
        self._patch_batches = iter(self._patch_loader)
        self._rng = np.random.default_rng(np.random.SeedSequence([self._seed, epoch, _MIX_STREAM]))

    def rectifies(self, epoch: int) -> bool:
        """Whether epoch e uses the rectified label y*: e > E_w (the first rectified epoch is E_w + 1)."""
        return epoch > self.warm_epoch

    def mixed_target(self, area_target: Tensor, forward: BCLForward, epoch: int) -> Tensor:
        """The soft target of the mixed images: ỹ while e ≤ E_w, then y* (§3.4), detached."""
        if not self.rectifies(epoch):
            return area_target
        return rectify_label(area_target, forward.projections, forward.prototype_projections, self.class_counts,
                             self.topk, self.omega, self.rho_norm)

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict[str, float]]:
        view0, view1, view2 = three_views(batch)
        labels = batch.labels
        if self._rng.random() < self.cutmix_prob:
            patches = self._next_patches(labels.shape[0])
            lam0 = float(self._rng.beta(self.cutmix_beta, self.cutmix_beta))
            order = torch.as_tensor(self._rng.permutation(labels.shape[0])).to(view0.device, non_blocking=True)
            centre = random_centres(1, view0.shape[-2], view0.shape[-1], self._rng)  # host: the box is Python ints
            mixed, lam = cutmix_batch(view0, patches.images.to(view0.device)[order], lam0, centre)
            forward = self.forward_views(model, mixed, view1, view2)
            target = area_label(labels, patches.labels.to(labels.device)[order], lam, self.num_classes)
            ce = self.soft_classification(forward.logits, self.mixed_target(target, forward, epoch))
        else:
            forward = self.forward_views(model, view0, view1, view2)
            ce = self.classification(forward.logits, labels)
        bcl = self.contrastive_loss(forward, labels)
        loss = self.alpha * ce + self.beta * bcl
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "bcl": bcl.detach()}

    def _next_patches(self, batch_size: int) -> Batch:
        """The next patch batch, truncated to the base batch (the two streams have equal length per epoch)."""
        if self._patch_batches is None:
            raise RuntimeError("ConCutMixMethod.on_epoch_start(epoch) must run before a training step")
        patches = next(self._patch_batches)
        return Batch(patches.images[:batch_size], patches.labels[:batch_size], patches.indices[:batch_size])


register_method(
    "concutmix", ConCutMixMethod, title="Contrastive CutMix (on BCL)", paper="arXiv:2407.04911", classifier="cosine",
    cosine_scale=30.0, base="bcl",
    recipes=(Recipe("resnet32", "cifar10_lt"), Recipe("resnet32", "cifar100_lt", (*CIFAR_TAGS, "if100_e400")),
             Recipe("resnet50", "imagenet_lt", ("e100",)), Recipe("resnext50", "imagenet_lt", ("e90", "e180")),
             Recipe("resnet50", "inat2018", ("e100",)), Recipe("resnet152", "places_lt", ("e100",))),
)
