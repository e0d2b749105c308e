"""Saliency maps for mixing: the model's CAM and Grad-CAM (docs/methods/baselines.md §8) and OpenCV's fine-grained
detector (§9).

The model maps come from one no-grad forward with the saliency-pass BN hygiene (batch statistics, running
statistics untouched, no parameter gradients); Grad-CAM then back-propagates through the head only.
Maps are (B, h, w) float32; `upsample` brings them to the input size, `peaks` finds the argmax.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.heads import NormedLinear

OPENCV_PACKAGE = "opencv-contrib-python-headless"


@contextmanager
def frozen_batch_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Inside the block, train-mode BN normalises with batch statistics but neither updates its running
    statistics nor counts the batch, so the state_dict stays bit-identical."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(norms, tracked):
            m.track_running_stats = flag


def saliency_forward(model: nn.Module, images: Tensor) -> dict[str, Tensor]:
    """The saliency pass: one no-grad forward of an (unwrapped) ltzoo model with frozen BN statistics.

    Returns the model's `return_features` dict: feature_map (the CAM layer), features and logits.
    """
    with torch.no_grad(), frozen_batch_norm_statistics(model):
        return model(images, return_features=True)


def classifier_weights(classifier: nn.Module) -> Tensor:
    """Per-class weights W (C, d) of a Linear head, or the column-normalised Ŵ of a NormedLinear head."""
    if isinstance(classifier, nn.Linear):
        return classifier.weight
    if isinstance(classifier, NormedLinear):
        return F.normalize(classifier.weight, dim=0).t()
    raise TypeError(f"CAM needs a Linear or NormedLinear classifier, got {type(classifier).__name__}")


def class_activation_maps(feature_map: Tensor, classifier: nn.Module, targets: Tensor) -> Tensor:
    """CAM of class c_i for each image: M_i = Σ_k W_{c_i,k} A_{i,k}, bias omitted; (B, h, w) float32.

    fp32 under autocast too: bf16 rounding ties near-equal peaks and moves the argmax the SMCL box is centred on.
    """
    with torch.autocast(feature_map.device.type, enabled=False):
        weights = classifier_weights(classifier).detach().float()[targets]
        return torch.einsum("bk,bkhw->bhw", weights, feature_map.detach().float())


def grad_cam(model: nn.Module, feature_map: Tensor, targets: Tensor) -> Tensor:
    """Grad-CAM G_i = ReLU(Σ_k α_k A_{i,k}), α_k = (1/hw) Σ ∂s_{c_i}/∂A_{k,ij}, back-propagated through
    `model.forward_head` (pool + head) only, on the detached map; parameter gradients stay untouched."""
    maps = feature_map.detach().float().requires_grad_(True)
    with torch.enable_grad(), torch.autocast(maps.device.type, enabled=False):
        scores = model.forward_head(maps).gather(1, targets.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(scores, maps)
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * maps.detach()).sum(dim=1))


def model_saliency(model: nn.Module, images: Tensor, labels: Tensor, kind: str = "cam",
                   target: str = "label") -> Tensor:
    """Saliency maps (B, h, w) of an (unwrapped) ltzoo model on `images`: `cam` or `gradcam` of each image's
    label (`target="label"`) or of its predicted class (`target="pred"`), from one saliency pass."""
    out = saliency_forward(model, images)
    if target == "label":
        targets = labels
    elif target == "pred":
        targets = out["logits"].argmax(dim=1)
    else:
        raise ValueError(f"unknown CAM target {target!r}; choose 'label' or 'pred'")
    if kind == "cam":
        return class_activation_maps(out["feature_map"], model.get_classifier(), targets)
    if kind == "gradcam":
        return grad_cam(model, out["feature_map"], targets)
    raise ValueError(f"unknown model saliency {kind!r}; choose 'cam' or 'gradcam'")


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (align_corners=False) of (B, h, w) maps to (B, H, W)."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def normalize_maps(maps: Tensor, kind: str, eps: float = 1e-8) -> Tensor:
    """Per-image normalisation of (B, H, W) maps: `minmax` to [0, 1] (M − min)/(max − min + ε), or `sum`:
    (M − min)/Σ(M − min), a zero-sum map falling back to uniform."""
    flat = maps.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    if kind == "minmax":
        out = shifted / (shifted.max(dim=1, keepdim=True).values + eps)
    elif kind == "sum":
        total = shifted.sum(dim=1, keepdim=True)
        uniform = torch.full_like(shifted, 1.0 / shifted.shape[1])
        out = torch.where(total > eps, shifted / total.clamp_min(eps), uniform)
    else:
        raise ValueError(f"unknown normalisation {kind!r}; choose 'minmax' or 'sum'")
    return out.view_as(maps)


def peaks(maps: Tensor) -> Tensor:
    """(row, col) of each map's maximum, the first in row-major order on ties; (B, 2) int64."""
    width = maps.shape[-1]
    index = maps.flatten(1).argmax(dim=1)
    return torch.stack((index // width, index % width), dim=1)


def to_uint8_images(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo Normalize(mean, std) of 0–1 images: round((x·σ + μ)·255) as uint8 (B, C, H, W)."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return ((images.float() * std_t + mean_t) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _cv2() -> ModuleType:
    """OpenCV with its contrib `saliency` module, or an ImportError that names the package to install."""
    hint = (f"the opencv_finegrained saliency needs cv2.saliency from the PyPI package {OPENCV_PACKAGE} "
            f"(pip install '{OPENCV_PACKAGE}' or 'ltzoo[saliency]'); plain opencv-python does not ship it")
    try:
        import cv2
    except ImportError as e:
        raise ImportError(hint) from e
    if not hasattr(cv2, "saliency"):
        raise ImportError(hint)
    return cv2


def opencv_finegrained_saliency(images: Tensor) -> Tensor:
    """OpenCV static fine-grained saliency of uint8 RGB images (B, 3, H, W), run on BGR; (B, H, W) in [0, 1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"need uint8 RGB images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    cv2 = _cv2()
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    maps = []
    for image in images.permute(0, 2, 3, 1).cpu().numpy():
        ok, saliency = detector.computeSaliency(np.ascontiguousarray(image[:, :, ::-1]))
        if not ok:
            raise RuntimeError("cv2.saliency.StaticSaliencyFineGrained failed on an image")
        maps.append(saliency)
    return torch.as_tensor(np.stack(maps), dtype=torch.float32, device=images.device)
