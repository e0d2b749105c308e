"""ResNet-32 for 32×32 CIFAR images with option-A (parameter-free) shortcuts, after He et al. 2016 §4.2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    """Two 3x3 conv-BN layers plus shortcut: identity, or option A (subsample + zero channels) when shapes change."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes_shape = stride != 1 or in_planes != planes
        self.shortcut = OptionAShortcut(planes) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(LongTailClassifier):
    """CIFAR ResNet (3 stages of 16/32/64 channels); depth 6n+2, ResNet-32 is n = 5 (463,504 backbone parameters).

    `forward_features` returns the layer3 map (64×8×8 for 32-px input), the CAM / Grad-CAM layer.
    """

    def __init__(
        self,
        depth: int = 32,
        num_classes: int = 10,
        classifier: str = "linear",
        cosine_scale: float = 1.0,
        in_chans: int = 3,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__(num_classes, classifier, cosine_scale)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, 16, blocks, stride=1)
        self.layer2 = self._make_layer(16, 32, blocks, stride=2)
        self.layer3 = self._make_layer(32, 64, blocks, stride=2)
        self.num_features = self.head_hidden_size = 64
        self._init_classifier()
        self._init_weights(zero_init_last)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
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

    def _init_classifier(self) -> None:
        super()._init_classifier()
        if isinstance(self.fc, nn.Linear):
            nn.init.kaiming_normal_(self.fc.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))
