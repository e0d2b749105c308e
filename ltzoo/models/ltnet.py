"""LTNet: an ImageNet-scale timm backbone with a long-tail classifier head (linear or cosine)."""

from __future__ import annotations

import timm
import torch
from torch import nn

from .base import LongTailClassifier


class LTNet(LongTailClassifier):
    """A timm backbone (ResNet-50, ResNeXt-50 32x4d, ResNet-152 …), average-pooled, optionally embedded, classified.

    `forward_features` is the backbone's last conv map (2048×7×7 at 224 px), the CAM layer. `embed_dim` adds the
    512-d fc feature of the OLTR Places-LT recipe.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        classifier: str = "linear",
        cosine_scale: float = 1.0,
        embed_dim: int | None = None,
        pretrained_backbone: bool = False,
        zero_init_last: bool = False,
        in_chans: int = 3,
    ) -> None:
        super().__init__(num_classes, classifier, cosine_scale)
        self.backbone = timm.create_model(
            backbone,
            pretrained=pretrained_backbone,
            num_classes=0,
            in_chans=in_chans,
            zero_init_last=zero_init_last,
        )
        backbone_features = self.backbone.num_features
        self.embed = nn.Linear(backbone_features, embed_dim) if embed_dim else nn.Identity()
        self.num_features = self.head_hidden_size = embed_dim or backbone_features
        self._init_classifier()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.backbone.forward_head(x, pre_logits=True))
