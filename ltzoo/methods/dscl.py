"""DSCL, decoupled supervised contrastive learning with patch-based self distillation (docs/methods/dscl.md §2–§3), in
two stages:

- `DSCLMethod` ("dscl", stage 1): MoCo-style representation learning, L = L_DSCL + λ_pbsd · L_PBSD;
- `DSCLProbe` ("dscl_probe", stage 2): a class-balanced linear probe on the frozen stage-1 encoder, whose BN running
  statistics are re-estimated on the probe's stream (`probe_bn: train`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.ops import roi_align

from ..augment.dscl_crops import DSCLViews, PerImageViews, dscl_probe_view, dscl_views
from ..data.batch_transforms import BatchTransform
from ..data.loader import Batch
from ..data.samplers import ClassAwareSampler
from ..losses import CrossEntropyLoss, DSCLLoss, PBSDLoss, upcast
from ..models.base import TRAIN_HEADS_PREFIX
from ..options import check_choice, check_number, check_pair
from ..registry import Recipe, cifar_recipes, register_method
from .base import TrainingMethod, TrainSet, unwrap
from .moco import KEY_BNS, QUEUE_INITS, MemoryQueue, MoCo, MomentumKeyEncoder, check_queue_size

PROJECTION_HEAD = "proj"
PROBE_BNS = ("train", "eval")
PROBE_SEED_OFFSET = 2  # the probe sampler's seed is the run seed + 2: never another stream's


def embed(encoder: nn.Module, images: Tensor) -> Tensor:
    """normalize(g(f(x))) in float32, g = the `proj` head run inside the encoder's forward (so DDP sees it): DSCL's
    queries, patch students and keys."""
    out = encoder(images, return_features=True, heads=(PROJECTION_HEAD,))
    return F.normalize(upcast(out[PROJECTION_HEAD]), dim=1)


def roi_features(feature_map: Tensor, boxes: Tensor, spatial_scale: float, output_size: int = 2) -> Tensor:
    """Patch features from the CAM-layer map: ROIAlign(U_i, box_ij, output_size², spatial_scale, adaptive sampling,
    aligned=False) averaged over its output grid; `boxes` (B, L, 4) in view pixels → (B, L, C). Computed in float32
    (a bf16 image index or box coordinate above 256 would be rounded)."""
    batch, count = boxes.shape[:2]
    image_index = torch.arange(batch, device=boxes.device).repeat_interleave(count)[:, None]
    rois = torch.cat([image_index.float(), boxes.flatten(0, 1).float()], dim=1)
    pooled = roi_align(upcast(feature_map), rois, output_size, spatial_scale=spatial_scale, sampling_ratio=-1,
                       aligned=False)
    return pooled.mean(dim=(2, 3)).view(batch, count, -1)


def _device_of(model: nn.Module) -> torch.device:
    return next(unwrap(model).parameters()).device


def _like(images: Tensor, reference: Tensor, device: torch.device) -> Tensor:
    """`images` on `device` in `reference`'s memory format (channels_last or not)."""
    channels_last = reference.dim() == 4 and reference.is_contiguous(memory_format=torch.channels_last)
    return images.to(device).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def dscl_item(batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x^q, x^k, patches (B, L, C, P, P), boxes (B, L, 4)) of a DSCL batch; a clear error for other loaders."""
    if not isinstance(batch.images, (tuple, list)) or len(batch.images) != 4:
        raise TypeError("DSCL needs (query, key, patches, boxes) per image: build the training loader with the "
                        "method's `cifar_transform` (CIFAR) or `image_transform` (per-image datasets)")
    query, key, patches, boxes = batch.images
    return query, key, patches, boxes


class DSCLMethod(TrainingMethod):
    """Stage 1 (§2.3). Per step: queries q = normalize(g_q(f_q(x^q))) and the query's CAM-layer map U; patch teachers
    c_ij = normalize(g_q(ROIAlign(U_i, box_ij))) without gradient; patch students s_ij = normalize(g_q(f_q(patch_ij)))
    in `num_patches` separate passes; the EMA update θ_k ← m·θ_k + (1 − m)·θ_q, then the keys; L_DSCL over the
    queries, keys and the queue, L_PBSD against the queue as it was before this batch; then the keys are enqueued.

    g_q is the training-only head `proj` (Linear → ReLU → Linear, no BN). The key encoder and the queue (`moco`)
    are built by `prepare_model` and are this method's checkpointed state.
    """

    exports_release = False  # the release is the stage-2 probe's model
    drop_last = True  # docs/methods/dscl.md §2.6 / §5: whole batches only, so the queue fills in batch-sized blocks

    name = "dscl"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        temperature: float = 0.07,
        beta: float | None = 8.0,
        pbsd_weight: float = 1.5,
        momentum: float = 0.999,
        queue_size: int = 65536,
        queue_init: str = "masked",
        feat_dim: int = 128,
        head_hidden: int = 2048,
        key_bn: str = "split",
        bn_splits: int = 2,
        num_patches: int = 5,
        patch_size: int = 64,
        patch_scale: Sequence[float] = (0.05, 0.6),
        global_scale: Sequence[float] = (0.08, 1.0),
        blur: bool = True,
        roi_output: int = 2,
    ) -> None:
        self.check_options({
            "temperature": temperature, "beta": beta, "pbsd_weight": pbsd_weight, "momentum": momentum,
            "queue_size": queue_size, "queue_init": queue_init, "feat_dim": feat_dim, "head_hidden": head_hidden,
            "key_bn": key_bn, "bn_splits": bn_splits, "num_patches": num_patches, "patch_size": patch_size,
            "patch_scale": patch_scale, "global_scale": global_scale, "blur": blur, "roi_output": roi_output})
        super().__init__(class_counts, epochs)
        self.dscl = DSCLLoss(temperature, beta)
        self.pbsd = PBSDLoss(temperature)
        self.pbsd_weight, self.momentum = float(pbsd_weight), float(momentum)
        self.queue_size, self.queue_init = queue_size, queue_init
        self.feat_dim, self.head_hidden = feat_dim, head_hidden
        self.key_bn, self.bn_splits = key_bn, bn_splits
        self.num_patches, self.patch_size = num_patches, patch_size
        self.patch_scale, self.global_scale, self.blur = tuple(patch_scale), tuple(global_scale), blur
        self.roi_output = roi_output
        self.seed = 0
        self.moco: MoCo | None = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Every option's range (K against the global batch: `check_batch`, and again in `bind_data`)."""
        check_number("temperature", options["temperature"], 0, low_open=True)
        if options["beta"] is not None:  # None: SupCon's weights
            check_number("beta", options["beta"], 0)
        check_number("pbsd_weight", options["pbsd_weight"], 0)
        check_number("momentum", options["momentum"], 0, 1)
        check_choice("queue_init", options["queue_init"], QUEUE_INITS)
        check_choice("key_bn", options["key_bn"], KEY_BNS)
        for count in ("queue_size", "feat_dim", "head_hidden", "bn_splits", "num_patches", "patch_size", "roi_output"):
            check_number(count, options[count], 1, integer=True)
        check_pair("patch_scale", options["patch_scale"], 0, 1)
        check_pair("global_scale", options["global_scale"], 0, 1)

    @classmethod
    def check_batch(cls, options: Mapping[str, Any], global_batch: int) -> None:
        check_queue_size(options["queue_size"], global_batch)

    def views(self, mean: Sequence[float], std: Sequence[float], size: int) -> DSCLViews:
        return dscl_views(mean, std, size, self.global_scale, self.num_patches, self.patch_size, self.patch_scale,
                          self.blur)

    def cifar_transform(self, mean: Sequence[float], std: Sequence[float]) -> BatchTransform:
        """The batched DSCL item of §5 on 32-px CIFAR images."""
        return self.views(mean, std, 32)

    def image_transform(self, mean: Sequence[float], std: Sequence[float], size: int = 224) -> PerImageViews:
        """The DSCL item of §2.2 for a per-image dataset (one PIL image in, four tensors out)."""
        return PerImageViews(self.views(mean, std, size))

    def heads_spec(self, num_features: int) -> dict[str, dict[str, Any]]:
        return {PROJECTION_HEAD: {"type": "mlp", "in_features": num_features, "hidden": self.head_hidden,
                                  "out_features": self.feat_dim, "batch_norm": False}}

    def bind_data(self, train_set: TrainSet) -> None:
        """Check K against the global batch now (a clear error before training) and take the run seed."""
        check_queue_size(self.queue_size, train_set.batch_size * train_set.world_size)
        self.seed = train_set.seed

    def prepare_model(self, model: nn.Module) -> None:
        """Build the key encoder (a copy of f_q and g_q) and the queue."""
        key_encoder = MomentumKeyEncoder(unwrap(model), embed, self.momentum, self.key_bn, self.bn_splits)
        queue = MemoryQueue(self.queue_size, self.feat_dim, self.num_classes, self.queue_init, seed=self.seed)
        self.moco = MoCo(key_encoder, queue)

    def _moco_on(self, device: torch.device) -> MoCo:
        if self.moco is None:
            raise RuntimeError("DSCLMethod.prepare_model(model) must run before training")
        if self.moco.queue.features.device != device:
            self.moco.to(device, non_blocking=True)  # once, at the run's first step
        return self.moco

    @torch.no_grad()
    def patch_teachers(self, model: nn.Module, feature_map: Tensor, boxes: Tensor, view_size: int) -> Tensor:
        """c_ij = normalize(g_q(ROIAlign(U_i, box_ij))) (B, L, d), never with a gradient."""
        pooled = roi_features(feature_map.detach(), boxes, feature_map.shape[-1] / view_size, self.roi_output)
        return F.normalize(upcast(unwrap(model).train_heads[PROJECTION_HEAD](pooled)), dim=-1)

    def patch_students(self, model: nn.Module, patches: Tensor, reference: Tensor) -> Tensor:
        """s_ij (B, L, d): one pass of the B patches of each index j (BN statistics per pass, as official)."""
        device = reference.device
        return torch.stack([embed(model, _like(patches[:, j], reference, device)) for j in range(patches.shape[1])],
                           dim=1)

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict[str, float]]:
        device = _device_of(model)
        query_view, key_view, patches, boxes = dscl_item(batch)
        query_view, labels = _like(query_view, query_view, device), batch.labels.to(device)
        moco = self._moco_on(device)
        out = model(query_view, return_features=True, heads=(PROJECTION_HEAD,))
        queries = F.normalize(upcast(out[PROJECTION_HEAD]), dim=1)
        teachers = self.patch_teachers(model, out["feature_map"], boxes.to(device), query_view.shape[-1])
        students = self.patch_students(model, patches, query_view)
        keys = moco.keys(unwrap(model), _like(key_view, query_view, device))
        memory, memory_labels = moco.queue.contents()
        dscl = self.dscl(queries, keys, labels, memory, memory_labels)
        pbsd = self.pbsd(students, teachers, keys, memory)
        moco.queue.enqueue(keys, labels)
        loss = dscl + self.pbsd_weight * pbsd
        return loss, {"loss": loss.detach(), "dscl": dscl.detach(), "pbsd": pbsd.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {} if self.moco is None else self.moco.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.moco is None:
            raise RuntimeError("DSCLMethod.prepare_model(model) must run before its state is loaded")
        self.moco.load_state_dict(state)


def load_encoder(model: nn.Module, weights: str | Path) -> None:
    """Load a stage-1 encoder into `model` from a .safetensors weights file (the caller finds and verifies it: the
    training side resolves a run's checkpoint to its weights file): every tensor except the classifier `fc.*` and the
    training-only heads; BN buffers included. Anything else missing or unexpected is an error."""
    file = Path(weights).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"no stage-1 weights file at {file} (init_from)")
    state = load_file(str(file))
    encoder = {key: value for key, value in state.items() if not key.startswith(("fc.", TRAIN_HEADS_PREFIX))}
    result = unwrap(model).load_state_dict(encoder, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith(("fc.", TRAIN_HEADS_PREFIX))]
    if missing or result.unexpected_keys:
        raise ValueError(f"{file} does not fit {type(unwrap(model)).__name__}: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")


class DSCLProbe(TrainingMethod):
    """Stage 2 (§3): a linear classifier on the frozen stage-1 encoder, trained with plain CE on a class-balanced
    stream (a class uniformly, then an image uniformly within it; |D| draws per epoch).

    `prepare_model` loads the encoder from the weights file `init_from` (backbone weights and BN buffers, without
    g_q), re-initialises fc with N(0, `fc_std`²) weights and zero bias and freezes everything else.
    `probe_bn: train` (official, default) keeps BN in train mode so its running statistics are re-estimated on the
    probe's 32/224-px stream (stage 1's statistics are dominated by patch passes); `eval` keeps them frozen (only for
    an encoder whose BN was recalibrated on full-size images).

    The class-balanced stream is the main loader itself, through `train_sampler` (CIFAR arrays and per-image
    datasets alike); its views are the probe augmentation.
    """

    name = "dscl_probe"

    def __init__(
        self,
        class_counts: Sequence[int],
        epochs: int,
        init_from: str,
        probe_bn: str = "train",
        fc_std: float = 0.01,
        crop_scale: Sequence[float] = (0.08, 1.0),
        blur: bool = True,
    ) -> None:
        self.check_options({"init_from": init_from, "probe_bn": probe_bn, "fc_std": fc_std, "crop_scale": crop_scale,
                            "blur": blur})
        super().__init__(class_counts, epochs)
        self.init_from, self.probe_bn, self.fc_std = init_from, probe_bn, fc_std
        self.crop_scale, self.blur = tuple(crop_scale), blur
        self.loss = CrossEntropyLoss()

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        if not isinstance(options["init_from"], str) or not options["init_from"]:
            raise ValueError(f"init_from must name stage 1's weights, got {options['init_from']!r}")
        check_choice("probe_bn", options["probe_bn"], PROBE_BNS)
        check_number("fc_std", options["fc_std"], 0, low_open=True)
        check_pair("crop_scale", options["crop_scale"], 0, 1)

    def cifar_transform(self, mean: Sequence[float], std: Sequence[float]) -> BatchTransform:
        """The probe augmentation on 32-px CIFAR batches."""
        return dscl_probe_view(mean, std, 32, self.crop_scale, self.blur)

    def image_transform(self, mean: Sequence[float], std: Sequence[float], size: int = 224) -> PerImageViews:
        """The same probe augmentation, one PIL image at a time, for a per-image dataset."""
        return PerImageViews(dscl_probe_view(mean, std, size, self.crop_scale, self.blur))

    def train_sampler(self, labels: np.ndarray, seed: int) -> ClassAwareSampler:
        """§3.2: |D| draws per epoch, each a class uniformly, then an image uniformly within it (with replacement)."""
        return ClassAwareSampler(labels, kind="class_balanced", seed=seed + PROBE_SEED_OFFSET)

    def prepare_model(self, model: nn.Module) -> None:
        """Load the stage-1 encoder, re-initialise fc, freeze everything but fc."""
        inner = unwrap(model)
        load_encoder(inner, self.init_from)
        nn.init.normal_(inner.fc.weight, std=self.fc_std)
        nn.init.zeros_(inner.fc.bias)
        for name, parameter in inner.named_parameters():
            parameter.requires_grad_(name.startswith("fc."))

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict[str, float]]:
        if self.probe_bn == "eval":
            for module in unwrap(model).modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        loss = self.loss(model(batch.images), batch.labels)
        return loss, {"loss": loss.detach()}


_DSCL_PAPER = "arXiv:2403.06151"
register_method(
    "dscl", DSCLMethod, title="Decoupled supervised contrastive learning + patch-based self distillation",
    paper=_DSCL_PAPER, stages=("", "probe"),
    recipes=(*cifar_recipes("the DSCL paper trains no CIFAR model; this ResNet-32 recipe is ltzoo's extension"),
             Recipe("resnet50", "imagenet_lt", ("e200",))),
)
register_method("dscl_probe", DSCLProbe, title="DSCL stage 2: linear probe on the frozen stage-1 backbone",
                paper=_DSCL_PAPER, stage_of="dscl")
