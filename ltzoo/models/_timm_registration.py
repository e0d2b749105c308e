"""Registers ltzoo's architectures with timm, with the zoo's released weights as their pretrained tags.

Built the way timm builds its own models: `generate_default_cfgs` (a row per published release, e.g.
`resnet32_cifar.ce_cifar10_lt_if100`, whose `hf_hub_id` is the release's Hub repo and whose `model_args` give the
head it needs; the cross-entropy baseline is the architecture's default; a weightless row where nothing is released)
and `build_model_with_cfg` (pretrained loading, head adaptation, `features_only`). Every entry function first
applies ltzoo's sha256 policy (`hub.verify_pretrained_source`) to the weights timm is about to load, so
`timm.create_model("<arch>.<tag>", pretrained=True)`, `hf-hub:` and `local-dir:` names are verified like
`ltzoo.create_model`; the load refuses NaN/Inf weights (`hub.refuse_non_finite` as timm's `pretrained_filter_fn`).
`timm.create_model(arch, checkpoint_path=...)` loads after the entry function has returned, through the
`load_checkpoint` name of timm's factory module; for ltzoo's architectures that name is wrapped to apply the same
local policy (safetensors only, sha256 checked where one is recorded, no NaN/Inf), and other timm models are
untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from timm.models import _factory, build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg
from timm.models._features import FeatureGetterNet
from torch import nn

from .. import hub, registry
from .base import LongTailClassifier
from .ltnet import LTNet
from .resnet_cifar import CifarResNet

_FEATURE_LEVELS = {"resnet32_cifar": (0, 1, 2, 3)}  # the others: timm's default, stem + four stages


class FeatureGetter(FeatureGetterNet):
    """timm's `FeatureGetterNet` (features from `forward_intermediates`), plus the `set_grad_checkpointing` that
    timm's other feature wrappers have and detection/segmentation pipelines call on a `features_only` backbone."""

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)


def _default_rank(cfg: registry.LtzooPretrainedCfg, home: str) -> tuple[bool, bool, bool]:
    """Sort key of an architecture's releases, first the one timm should default to: the method the others build on
    (declared with no base: cross-entropy), on the architecture's home benchmark, at its entry's default tag. A
    later release elsewhere (CIFAR-100-LT, say) never takes the default over."""
    entry, tag = registry.resolve(cfg.zoo_name)
    return (registry.METHODS[entry.method].base is not None, entry.dataset != home, tag != entry.default_tag)


def _default_cfgs() -> dict[str, registry.LtzooPretrainedCfg]:
    """Every release as an 'arch.tag' row. timm makes an architecture's first tag with weights its default; ltzoo
    names it explicitly ('*', see `_default_rank`). An architecture without releases gets a weightless row."""
    homes = {"resnet32": "cifar10_lt", "resnet50": "imagenet_lt", "resnext50": "imagenet_lt",
             "resnet152": "places_lt"}
    releases = registry.timm_pretrained_cfgs()
    rows: dict[str, registry.LtzooPretrainedCfg] = {}
    for arch, home in homes.items():
        cfg = registry.arch_cfg(arch, home)
        tags = [name for name in releases if name.startswith(f"{cfg.architecture}.")]
        if not tags:
            rows[cfg.architecture] = cfg
            continue
        default = min(tags, key=lambda name: _default_rank(releases[name], home))
        rows[f"{default}*"] = releases[default]
        rows.update({name: releases[name] for name in tags if name != default})
    return rows


default_cfgs = generate_default_cfgs(_default_cfgs())


def _with_release_record(cfg: registry.LtzooPretrainedCfg | Any) -> Any:
    """For an `hf-hub:` / `local-dir:` source, add what the release's config.json `ltzoo` block records (zoo name,
    sha256, paper, metrics) and what the zoo name implies (recipe id, imbalance factor), so `model.pretrained_cfg`
    reads as it does for the zoo name."""
    if isinstance(cfg, registry.LtzooPretrainedCfg) or cfg.source not in ("hf-hub", "local-dir"):
        return cfg
    if cfg.source == "hf-hub":
        meta, sha = hub.hub_meta(cfg.hf_hub_id), hub.hub_expected_sha256(cfg.hf_hub_id)
    else:
        config = hub.read_config(f"{cfg.file}/{hub.CONFIG_NAME}")
        meta = config.get("ltzoo", {})
        sha = meta.get("files", {}).get(hub.WEIGHTS_NAME)
    zoo_name = f"{meta['name']}.{meta['tag']}" if meta.get("name") and meta.get("tag") else None
    zoo = registry.pretrained_cfg(zoo_name) if zoo_name and registry.is_model(zoo_name) else None
    return registry.LtzooPretrainedCfg(
        **dataclasses.asdict(cfg), zoo_name=zoo_name, sha256=sha, recipe=zoo.recipe if zoo else None,
        paper=meta.get("paper"), metrics=meta.get("metrics"), imb_factor=zoo.imb_factor if zoo else None,
    )


def _create(
    cls: type[nn.Module],
    variant: str,
    pretrained: bool,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """timm's builder, after resolving the pretrained cfg and checking the weights it names."""
    source_args = kwargs.get("pretrained_model_args") or {}
    extra = sorted(set(source_args) - hub.HUB_MODEL_ARGS)
    if extra:
        raise hub.UnverifiedWeightsError(
            f"the config.json of these weights sets model_args {extra} that ltzoo does not accept; "
            f"allowed: {sorted(hub.HUB_MODEL_ARGS)}")
    cfg = _with_release_record(resolve_pretrained_cfg(variant, pretrained_cfg, pretrained_cfg_overlay))
    for key, value in (getattr(cfg, "model_args", None) or {}).items():  # the weights' head; explicit kwargs win
        kwargs.setdefault(key, value)
    if pretrained:
        if not cfg.has_weights:
            tags = registry.timm_pretrained_cfgs()
            names = [k for k in tags if k.startswith(f"{variant}.")]
            raise hub.WeightsNotAvailableError(
                f"{variant} has no default weights; name a pretrained tag"
                + (f", one of: {', '.join(names)}" if names else " (none is published yet)"))
        hub.verify_pretrained_source(cfg.to_dict())
    feature_cfg: dict[str, Any] = {"feature_cls": FeatureGetter}
    if variant in _FEATURE_LEVELS:
        feature_cfg["out_indices"] = _FEATURE_LEVELS[variant]
    try:
        return build_model_with_cfg(
            cls, variant, pretrained, pretrained_cfg=cfg, feature_cfg=feature_cfg,
            pretrained_filter_fn=hub.refuse_non_finite, **kwargs,
        )
    except RuntimeError as e:
        if "state_dict" not in str(e) or isinstance(e, hub.WeightsError):
            raise
        args = {k: v for k, v in kwargs.items() if k in hub.HUB_MODEL_ARGS}
        raise hub.CorruptWeightsError(
            f"{cfg.file or cfg.hf_hub_id or variant} does not fit {cls.__name__} {args} "
            f"({' '.join(str(e).split())[:300]}). Is it the checkpoint of another architecture or classifier kind?"
        ) from None


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (option-A shortcuts, 0.46 M parameters)."""
    return _create(CifarResNet, "resnet32_cifar", pretrained, depth=32, **kwargs)


@register_model
def lt_resnet50(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNet-50 backbone from timm with a long-tail classifier head."""
    return _create(LTNet, "lt_resnet50", pretrained, backbone="resnet50", **kwargs)


@register_model
def lt_resnext50_32x4d(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNeXt-50 (32x4d) backbone from timm with a long-tail classifier head."""
    return _create(LTNet, "lt_resnext50_32x4d", pretrained, backbone="resnext50_32x4d", **kwargs)


@register_model
def lt_resnet152(pretrained: bool = False, **kwargs: Any) -> LTNet:
    """ResNet-152 backbone from timm with a long-tail classifier head (Places-LT)."""
    return _create(LTNet, "lt_resnet152", pretrained, backbone="resnet152", **kwargs)


_timm_load_checkpoint = _factory.load_checkpoint


def _verified_load_checkpoint(model: nn.Module, checkpoint_path: str, *args: Any, **kwargs: Any) -> Any:
    """timm's `load_checkpoint` for `create_model(..., checkpoint_path=)`, after ltzoo's local policy where the model
    is (or wraps, as `features_only` does) an ltzoo architecture; weights holding NaN or Inf are refused after it, as
    on every other load path (a freshly built model holds none)."""
    if not any(isinstance(m, LongTailClassifier) for m in model.modules()):
        return _timm_load_checkpoint(model, checkpoint_path, *args, **kwargs)
    hub.check_local_weights(checkpoint_path)
    result = _timm_load_checkpoint(model, checkpoint_path, *args, **kwargs)
    hub.refuse_non_finite(model.state_dict())
    return result


_factory.load_checkpoint = _verified_load_checkpoint
