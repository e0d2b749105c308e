"""The timm model interface shared by every ltzoo architecture: pooling, head, dropout, features, param groups."""

# No `from __future__ import annotations` here: torch.fx copies forward's annotations into the code of a traced
# graph, which TorchScript then compiles, so they must be real typing objects, not strings.
from collections.abc import Sequence
from typing import Any, Dict, List, Optional, Union  # noqa: UP035 (typing objects: see the note above)

import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d, get_device_dtype
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing  # torch.fx's own check, exported only privately

from ..hub import TRAIN_HEADS_PREFIX, split_train_heads
from .heads import create_classifier

__all__ = ["TRAIN_HEADS_PREFIX", "LongTailClassifier", "inference_state_dict", "train_heads_state_dict"]


class LongTailClassifier(nn.Module):
    """Backbone + global pool + classifier head (linear or cosine), with timm's model interface.

    Subclasses set `num_features` (int: channels of `forward_features`' map, the CAM layer), implement
    `forward_features` and `forward_intermediates`, set `feature_info`, then call `_init_classifier()`. The pool is
    timm's `SelectAdaptivePool2d` (`avg`, `max`, `avgmax`, `catavgmax`, or `''` for the unpooled map); `drop_rate`
    is dropout on the pooled feature before the classifier, as in timm's ResNet. Training-only heads live in
    `train_heads`; `forward` never runs them.
    """

    def __init__(
        self,
        num_classes: int,
        classifier: str = "linear",
        cosine_scale: float = 1.0,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.classifier = classifier
        self.cosine_scale = cosine_scale
        self.drop_rate = drop_rate
        self.in_chans = in_chans
        self.grad_checkpointing = False
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.train_heads = nn.ModuleDict()

    def init_weights(self) -> None:
        """Draw every parameter and buffer afresh as construction does (BatchNorm statistics reset too): timm's
        contract for a model built on the meta device and materialised with `to_empty`."""
        for module in self.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self._init_weights(self._zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        """The architecture's own init after each module's default one (subclasses: kaiming, zeroed last BN)."""

    def _pooled_features(self) -> int:
        """Width of `pool`'s output: the map's channels times the pool's multiplier (2 for catavgmax)."""
        return self.num_features * self.global_pool.feat_mult()

    def _init_classifier(self, device: Any = None, dtype: Any = None) -> None:
        self.head_hidden_size = self._pooled_features()
        self.fc = create_classifier(
            self.classifier, self.head_hidden_size, self.num_classes, self.cosine_scale, device=device, dtype=dtype
        )

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map pooled to one vector per image (the pre-logits feature, before dropout)."""
        return self.global_pool(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(
        self,
        x: torch.Tensor,
        return_features: bool = False,
        heads: Optional[List[str]] = None,  # noqa: UP006,UP007,UP045 (typing objects: see the top)
        class_heads: Optional[List[str]] = None,  # noqa: UP006,UP007,UP045
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:  # noqa: UP006,UP007
        """Logits; with `return_features`, a dict with the CAM-layer map, the pooled feature, the logits and the
        outputs of the named training-only heads — on the pooled features (`heads`) or on the classifier's class
        vectors (`class_heads`, BCL's prototypes). Training methods call this through the (possibly DDP-wrapped)
        model so every head runs inside the wrapped forward. Scripted (TorchScript) or traced (torch.fx), the model
        is the plain classifier: the training branch is left out, so timm's jit and fx tooling works."""
        feature_map = self.forward_features(x)
        if torch.jit.is_scripting():
            return self.forward_head(feature_map)
        if is_fx_symbolic_tracing() or not return_features:
            return self.forward_head(feature_map)
        return self._features_and_heads(feature_map, heads or (), class_heads or ())

    @torch.jit.unused
    def _features_and_heads(
        self, feature_map: torch.Tensor, heads: Sequence[str], class_heads: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        features = self.pool(feature_map)
        dropped = F.dropout(features, p=float(self.drop_rate), training=self.training) if self.drop_rate else features
        out = {"feature_map": feature_map, "features": features, "logits": self.fc(dropped)}
        for name in heads:
            out[name] = self.train_heads[name](features)
        for name in class_heads:
            out[name] = self.train_heads[name](self.fc.class_vectors())
        return out

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def _set_global_pool(self, global_pool: str) -> None:
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier of the same kind (linear or cosine) for `num_classes` (0: none, `forward` gives the
        pooled feature); `global_pool` changes the pooling ('' with 0 classes: the unpooled map), None keeps it.
        The new head takes the model's device, dtype and train/eval mode."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is not None:
            self._set_global_pool(global_pool)
        self._init_classifier(**dd)
        for module in (self.global_pool, self.fc, getattr(self, "embed", None)):  # the new modules: the model's mode
            if module is not None:
                module.train(self.training)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each residual block's activations in backward instead of storing them (timm's semantics)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay beyond timm's rule for 1-D tensors: none. The cosine head's weight
        is decayed like the paper recipes (LDAM-DRW, BCL) do; the zoo's releases were trained that way."""
        return set()


def inference_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without training-only heads: exactly what plain timm loads strictly."""
    return split_train_heads(model.state_dict())[0]


def train_heads_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the training-only heads, keyed relative to `model.train_heads`."""
    return split_train_heads(model.state_dict())[1]
