"""Classifier heads (linear, cosine) and the training-only heads methods attach."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing  # torch.fx's own check, exported only privately

CLASSIFIERS = ("linear", "cosine")


class NormedLinear(nn.Module):
    """Cosine classifier: z_k = s · <x/‖x‖, W_k/‖W_k‖>, W of shape (d, C), no bias.

    The zoo's LDAM, BCL and ConCutMix entries use s = 30, so their logits are the ones softmax was trained on;
    s = 1 gives the raw cosine. Computed in fp32 under autocast too.
    """

    def __init__(
        self, in_features: int, out_features: int, scale: float = 1.0, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(in_features, out_features, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """LDAM's init: uniform columns renormed to unit length (the scale is the head's, not the weights')."""
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def class_vectors(self) -> torch.Tensor:
        """The per-class weight vectors as a (C, d) matrix (BCL's prototype input)."""
        return self.weight.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # TorchScript has no autocast to leave
            return self._scaled_cosine(x)
        if is_fx_symbolic_tracing() or x.device.type == "meta":  # a traced graph / meta tensors: no autocast state
            return self._scaled_cosine(x)
        # fp32 even under autocast: s = 30 turns bf16's rounding of the cosine (≈ 4e-3) into ≈ 0.1 logit
        with torch.autocast(x.device.type, enabled=False):
            return self._scaled_cosine(x)

    def _scaled_cosine(self, x: torch.Tensor) -> torch.Tensor:
        """In fp32; returned in the weight's dtype (fp32 under autocast, bf16 in a model cast to bf16)."""
        out = F.normalize(x.float(), dim=1) @ F.normalize(self.weight.float(), dim=0)
        out = out * self.scale if self.scale != 1.0 else out
        return out.to(self.weight.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}"


def create_classifier(
    kind: str, in_features: int, num_classes: int, cosine_scale: float = 1.0, device: Any = None, dtype: Any = None
) -> nn.Module:
    """Build a classifier head by name: `linear` (nn.Linear with bias) or `cosine` (NormedLinear); 0 classes: none."""
    if num_classes <= 0:
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_features, num_classes, device=device, dtype=dtype)
    if kind == "cosine":
        return NormedLinear(in_features, num_classes, scale=cosine_scale, device=device, dtype=dtype)
    raise ValueError(f"unknown classifier {kind!r}; choose one of {CLASSIFIERS}")


class ProjectionMLP(nn.Module):
    """MLP projection head d → hidden → out (ReLU, optional BN1d); used by the contrastive methods."""

    def __init__(self, in_features: int, hidden: int, out_features: int, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_features)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


HEAD_TYPES = {"mlp": ProjectionMLP, "linear": nn.Linear}


def build_train_heads(spec: dict[str, dict]) -> nn.ModuleDict:
    """Build training-only heads from a JSON-able spec, e.g. {"proj": {"type": "mlp", "in_features": 64, ...}}.

    The spec travels in a release's config.json so `create_model(..., with_heads=True)` can rebuild the heads.
    """
    heads = nn.ModuleDict()
    for name, head_spec in spec.items():
        kwargs = dict(head_spec)
        kind = kwargs.pop("type")
        if kind not in HEAD_TYPES:
            raise ValueError(f"unknown head type {kind!r} for head {name!r}; choose one of {sorted(HEAD_TYPES)}")
        heads[name] = HEAD_TYPES[kind](**kwargs)
    return heads
