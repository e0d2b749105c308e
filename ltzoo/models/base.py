"""The timm model interface shared by every ltzoo architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .heads import create_classifier

TRAIN_HEADS_PREFIX = "train_heads."


class LongTailClassifier(nn.Module):
    """Backbone + pooled feature + classifier head, with timm's interface.

    Subclasses set `num_features` and implement `forward_features` (the last conv map, the CAM layer) and
    `pool` (map → feature vector). Training-only heads live in `train_heads`; `forward` never runs them.
    """

    num_features: int

    def __init__(self, num_classes: int, classifier: str = "linear", cosine_scale: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.classifier = classifier
        self.cosine_scale = cosine_scale
        self.train_heads = nn.ModuleDict()

    def _init_classifier(self) -> None:
        self.fc = create_classifier(self.classifier, self.num_features, self.num_classes, self.cosine_scale)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling of the last feature map to one vector per image."""
        return x.mean(dim=(2, 3))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(
        self,
        x: torch.Tensor,
        return_features: bool = False,
        heads: Sequence[str] = (),
        class_heads: Sequence[str] = (),
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Logits; with `return_features`, a dict with the CAM-layer map, the pooled feature, the logits and the
        outputs of the named training-only heads — on the pooled features (`heads`) or on the classifier's class
        vectors (`class_heads`, BCL's prototypes). Training methods call this through the (possibly DDP-wrapped)
        model so every head runs inside the wrapped forward."""
        feature_map = self.forward_features(x)
        if not return_features:
            return self.forward_head(feature_map)
        features = self.pool(feature_map)
        out = {"feature_map": feature_map, "features": features, "logits": self.fc(features)}
        for name in heads:
            out[name] = self.train_heads[name](features)
        for name in class_heads:
            out[name] = self.train_heads[name](self.fc.class_vectors())
        return out

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a freshly initialised one of the same kind for `num_classes` classes."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"ltzoo models pool by average only, got global_pool={global_pool!r}")
        self.num_classes = num_classes
        self._init_classifier()


def inference_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without training-only heads: exactly what plain timm loads strictly."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(TRAIN_HEADS_PREFIX)}


def train_heads_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the training-only heads, keyed relative to `model.train_heads`."""
    n = len(TRAIN_HEADS_PREFIX)
    return {k[n:]: v for k, v in model.state_dict().items() if k.startswith(TRAIN_HEADS_PREFIX)}
