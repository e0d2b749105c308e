"""Registers ltzoo's architectures with timm, so `timm.create_model("resnet32_cifar")` and Hub releases work."""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .ltnet import LTNet
from .resnet_cifar import CifarResNet

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {"first_conv": "conv1", "classifier": "fc", "license": "apache-2.0", **kwargs}


default_cfgs = generate_default_cfgs(
    {
        "resnet32_cifar": _cfg(
            num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, interpolation="bilinear",
            mean=CIFAR_MEAN, std=CIFAR_STD,
        ),
        "lt_resnet50": _cfg(first_conv="backbone.conv1", num_classes=1000, pool_size=(7, 7), interpolation="bilinear"),
        "lt_resnext50_32x4d": _cfg(
            first_conv="backbone.conv1", num_classes=1000, pool_size=(7, 7), interpolation="bilinear"
        ),
        "lt_resnet152": _cfg(first_conv="backbone.conv1", num_classes=365, pool_size=(7, 7), interpolation="bilinear"),
    }
)


def _build(cls: type, variant: str, pretrained: bool, **kwargs: Any):
    return build_model_with_cfg(cls, variant, pretrained, **kwargs)


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (option-A shortcuts, 0.46 M parameters)."""
    return _build(CifarResNet, "resnet32_cifar", pretrained, depth=32, **kwargs)


@register_model
def lt_resnet50(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNet-50 backbone from timm with a long-tail classifier head."""
    return _build(LTNet, "lt_resnet50", pretrained, backbone="resnet50", **kwargs)


@register_model
def lt_resnext50_32x4d(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNeXt-50 (32x4d) backbone from timm with a long-tail classifier head."""
    return _build(LTNet, "lt_resnext50_32x4d", pretrained, backbone="resnext50_32x4d", **kwargs)


@register_model
def lt_resnet152(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNet-152 backbone from timm with a long-tail classifier head (Places-LT)."""
    return _build(LTNet, "lt_resnet152", pretrained, backbone="resnet152", **kwargs)
