"""ResNet-32 for 32×32 CIFAR images with option-A (parameter-free) shortcuts, after He et al. 2016 §4.2."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices  # timm exports it only privately; its models use it too
from torch import nn

from .base import LongTailClassifier


class OptionAShortcut(nn.Module):
    """Subsample every second row/column, then zero-pad channels by planes//4 on each side; no parameters."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus shortcut: identity, or option A (subsample + zero channels) when shapes change.

    `drop_path` is stochastic depth on the residual branch (timm's DropPath), off by default.
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, drop_path: float = 0.0, device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(planes, **dd)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(planes, **dd)
        changes_shape = stride != 1 or in_planes != planes
        self.shortcut = OptionAShortcut(planes) if changes_shape else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(self.drop_path(out) + self.shortcut(x))


class CifarResNet(LongTailClassifier):
    """CIFAR ResNet (3 stages of 16/32/64 channels); depth 6n+2, ResNet-32 is n = 5 (463,504 backbone parameters).

    `forward_features` returns the layer3 map (64×8×8 for 32-px input), the CAM / Grad-CAM layer. Feature levels
    (`feature_info`, `forward_intermediates`): 0 the stem, 1–3 the three stages (strides 1, 2, 4).
    `drop_path_rate` rises linearly over the blocks, as in timm's ResNet.
    """

    def __init__(
        self,
        depth: int = 32,
        num_classes: int = 10,
        classifier: str = "linear",
        cosine_scale: float = 1.0,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_classes, classifier, cosine_scale, global_pool, drop_rate, in_chans)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        dd = {"device": device, "dtype": dtype}
        blocks = (depth - 2) // 6
        dpr = [drop_path_rate * i / max(3 * blocks - 1, 1) for i in range(3 * blocks)]
        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(16, **dd)
        self.layer1 = self._make_layer(16, 16, stride=1, drop_paths=dpr[:blocks], **dd)
        self.layer2 = self._make_layer(16, 32, stride=2, drop_paths=dpr[blocks:2 * blocks], **dd)
        self.layer3 = self._make_layer(32, 64, stride=2, drop_paths=dpr[2 * blocks:], **dd)
        self.num_features = 64
        self.feature_info = [
            dict(num_chs=16, reduction=1, module="bn1"),
            dict(num_chs=16, reduction=1, module="layer1"),
            dict(num_chs=32, reduction=2, module="layer2"),
            dict(num_chs=64, reduction=4, module="layer3"),
        ]
        self._init_classifier(**dd)
        self._zero_init_last = zero_init_last
        self._init_weights(zero_init_last)

    @staticmethod
    def _make_layer(
        in_planes: int, planes: int, stride: int, drop_paths: list[float], device: Any, dtype: Any
    ) -> nn.Sequential:
        dd = {"device": device, "dtype": dtype}
        layers = [BasicBlock(in_planes, planes, stride, drop_paths[0], **dd)]
        layers += [BasicBlock(planes, planes, drop_path=p, **dd) for p in drop_paths[1:]]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _init_classifier(self, device: Any = None, dtype: Any = None) -> None:
        super()._init_classifier(device=device, dtype=dtype)
        if isinstance(self.fc, nn.Linear):
            nn.init.kaiming_normal_(self.fc.weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups for layer-wise lr decay: the stem, then each stage (coarse) or each block."""
        return dict(stem=r"^conv1|^bn1", blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)")

    def _stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3]

    def _run_stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(stage, x)
        return stage(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.layer3, checkpoint_seq(self.layer2, checkpoint_seq(self.layer1, x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The final map and the maps of the levels in `indices` (timm's semantics: int n = the last n levels)."""
        if output_fmt != "NCHW":
            raise ValueError(f"ltzoo models give NCHW feature maps only, got output_fmt={output_fmt!r}")
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates = []
        x = F.relu(self.bn1(self.conv1(x)))
        if 0 in take:
            intermediates.append(x)
        stages = self._stages()[:max_index] if stop_early else self._stages()
        for i, stage in enumerate(stages, start=1):
            x = self._run_stage(stage, x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last level in `indices` (and the head), for a features-only model. As in timm,
        the features then end at that level (its width is `num_features`) and a head sized for the dropped stages
        goes too; a dropped stage becomes an empty Sequential, which grad checkpointing still iterates."""
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        for i in range(max_index + 1, 4):
            setattr(self, f"layer{i}", nn.Sequential())
        prune_end = max_index < len(self.feature_info) - 1
        if prune_end:
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take
