"""LTNet: an ImageNet-scale timm backbone with a long-tail classifier head (linear or cosine)."""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from ..hub import timm_backbone_weights
from .base import LongTailClassifier


class LTNet(LongTailClassifier):
    """A timm backbone (ResNet-50, ResNeXt-50 32x4d, ResNet-152 …), pooled, optionally embedded, classified.

    `forward_features` is the backbone's last conv map (2048×7×7 at 224 px), the CAM layer. `embed_dim` adds the
    512-d fc feature of the OLTR Places-LT recipe. Feature levels, gradient checkpointing and stochastic depth
    (`drop_path_rate`) are the backbone's own; `pretrained_backbone` starts it from timm's ImageNet weights, checked
    by sha256 (`pretrained_backbone_sha256` pins one); pooling, dropout and the head are this module's, so the
    state dict keeps the keys `backbone.*`, `embed.*`, `fc.*` of the released weights.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 1000,
        classifier: str = "linear",
        cosine_scale: float = 1.0,
        embed_dim: int | None = None,
        pretrained_backbone: bool = False,
        pretrained_backbone_sha256: str | None = None,
        zero_init_last: bool = False,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_classes, classifier, cosine_scale, global_pool, drop_rate, in_chans)
        if pretrained_backbone_sha256 and not pretrained_backbone:
            raise ValueError("pretrained_backbone_sha256 pins the ImageNet weights of pretrained_backbone=True; "
                             "set both or neither")
        overlay = None
        if pretrained_backbone:  # timm's weights, verified by sha256 first (timm's own download checks none)
            overlay = dict(state_dict=timm_backbone_weights(backbone, pretrained_backbone_sha256))
        self.backbone = timm.create_model(
            backbone,
            pretrained=pretrained_backbone,
            pretrained_cfg_overlay=overlay,
            num_classes=0,
            global_pool="",
            in_chans=in_chans,
            zero_init_last=zero_init_last,
            drop_path_rate=drop_path_rate,
            device=device,
            dtype=dtype,
        )
        self._zero_init_last = zero_init_last
        self.num_features = self.backbone.num_features
        self.feature_info = [dict(info, module=f"backbone.{info['module']}") for info in self.backbone.feature_info]
        self.embed_dim = embed_dim
        self.embed: nn.Module = nn.Identity()
        self._init_classifier(device=device, dtype=dtype)

    def _init_weights(self, zero_init_last: bool) -> None:
        self.backbone.init_weights(zero_init_last=zero_init_last)

    def _pooled_features(self) -> int:
        if self.embed_dim and self.global_pool.pool_type:
            return self.embed_dim
        return super()._pooled_features()

    def _init_classifier(self, device: Any = None, dtype: Any = None) -> None:
        if self.embed_dim:  # the embedding follows the pool: rebuilt only when the pooled width changes
            pooled = super()._pooled_features()
            if not self.global_pool.pool_type:
                self.embed = nn.Identity()
            elif getattr(self.embed, "in_features", None) != pooled:
                self.embed = nn.Linear(pooled, self.embed_dim, device=device, dtype=dtype)
        super()._init_classifier(device=device, dtype=dtype)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.global_pool(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The backbone's feature levels (stem, then each stage), with timm's semantics."""
        return self.backbone.forward_intermediates(
            x, indices=indices, norm=norm, stop_early=stop_early, output_fmt=output_fmt,
            intermediates_only=intermediates_only,
        )

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the backbone's stages after the last level in `indices` (and the head), for a features-only model.
        The features then end at that level (the backbone's new `num_features`), and a head sized for the dropped
        stages goes too, as in timm."""
        take = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=True)
        prune_end = self.backbone.num_features != self.num_features
        self.num_features = self.backbone.num_features
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups for layer-wise lr decay: the backbone's stem, then each stage (coarse) or each block."""
        return dict(
            stem=r"^backbone\.(?:conv1|bn1)",
            blocks=r"^backbone\.layer(\d+)" if coarse else r"^backbone\.layer(\d+)\.(\d+)",
        )
