"""create_model: a zoo name (or `hf-hub:` id) built and loaded through timm, with the zoo's checks and extras.

Everything goes through `timm.create_model`: a zoo name becomes its timm architecture with the release's pretrained
cfg (the same row `timm.create_model("<arch>.<tag>")` reads), so both paths give the same model and
`pretrained_cfg`; timm's `load_pretrained` loads and adapts the head, and the architectures' entry functions
apply the sha256 policy (`hub.verify_pretrained_source`). What stays here is what timm has no notion of: the
zoo's names and their errors, a local checkpoint's class count, and the training-only heads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn

from . import hub, registry
from .benchmarks import imb_factor_of
from .models import build_train_heads

HF_HUB_PREFIX = "hf-hub:"


def _load_heads(model: nn.Module, weights: Path | None, repo_id: str | None) -> None:
    """Attach and load the training-only heads that belong to the weights: from the same Hub release, or from the
    heads.safetensors and config.json beside a local weights file (never a Hub release's heads for local weights)."""
    if weights is None:
        meta = hub.hub_meta(repo_id)
        heads_file = hub.download(repo_id, hub.HEADS_NAME) if meta.get("heads") else None
        source = repo_id
    else:
        config_file, heads_file = weights.with_name(hub.CONFIG_NAME), weights.with_name(hub.HEADS_NAME)
        if not (config_file.is_file() and heads_file.is_file()):
            raise hub.WeightsNotAvailableError(
                f"with_heads=True loads the training-only heads saved with {weights}: {hub.HEADS_NAME} and "
                f"{hub.CONFIG_NAME} must sit beside it (as in a release folder written by save_pretrained)")
        meta = hub.read_config(config_file).get("ltzoo", {})
        source = weights
    if not meta.get("heads"):
        raise hub.WeightsNotAvailableError(
            f"{source} comes without training-only heads (no `heads` in its config.json)")
    model.train_heads.update(build_train_heads(meta["heads"]))
    state = hub.load_safetensors(heads_file, meta.get("files", {}).get(hub.HEADS_NAME))
    model.train_heads.load_state_dict(hub.refuse_non_finite(state), strict=True)


def _hub_repo(model_name: str) -> str:
    repo_id = model_name[len(HF_HUB_PREFIX):].strip()
    if "/" not in repo_id:
        raise registry.UnknownModelError(
            f"{model_name!r} names no Hub repo: write hf-hub:<namespace>/<repo>, e.g. "
            f"hf-hub:{registry.hub_namespace()}/resnet32_ce_cifar10_lt.if100")
    hub.check_hub_config(repo_id, hub.read_config(hub.download(repo_id, hub.CONFIG_NAME)))
    return repo_id


def create_model(
    model_name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    checkpoint_path: str | Path | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    with_heads: bool = False,
    logit_adjust: float | None = None,
    tau_norm: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model by name, with timm's semantics.

    `name` means `name.<default tag>`; `hf-hub:<ns>/<repo>` builds from a Hub release's config.json. A
    `num_classes` different from the weights' keeps the backbone and re-initialises the classifier (timm's
    `load_pretrained`); `model.pretrained_cfg` describes the weights. `checkpoint_path` loads a local
    .safetensors file (verified when a sha256 is recorded for it), `pretrained_cfg_overlay=dict(file=...)` too and
    takes precedence. `with_heads` also loads the training-only heads (`heads.safetensors`). `logit_adjust=τ` makes
    the model predict z − τ·log π and `tau_norm=τ` τ-normalises a linear head (π and the counts: the benchmark's
    training class counts; ltzoo.evaluation.posthoc). Extra kwargs (drop_rate, global_pool, features_only, ...) go
    to the architecture.
    """
    overlay = dict(pretrained_cfg_overlay or {})
    if model_name.startswith(HF_HUB_PREFIX):
        repo_id, cfg, timm_name = _hub_repo(model_name), None, model_name
        trained_classes = None
    else:
        entry, tag = registry.resolve(model_name)
        cfg, timm_name = registry.pretrained_cfg(model_name), entry.timm_arch
        repo_id, trained_classes = cfg.hf_hub_id, cfg.num_classes
        if pretrained and not (cfg.sha256 or checkpoint_path or overlay.get("file")):
            raise hub.WeightsNotAvailableError(
                f"{model_name} has no published weights yet: {entry.rebuild_hint(tag)}; then load the result with "
                "create_model(..., checkpoint_path='<the export folder>/model.safetensors')."
            )
    local = overlay.get("file") if pretrained else None
    if checkpoint_path is not None and local is None:
        local = checkpoint_path
        classifier = cfg.classifier if cfg is not None else hub.read_config(
            hub.download(repo_id, hub.CONFIG_NAME))["pretrained_cfg"].get("classifier")
        file_classes = classifier and hub.checkpoint_num_classes(hub.local_weights_file(checkpoint_path), classifier)
        if num_classes is None and trained_classes is not None and file_classes not in (None, trained_classes):
            raise hub.ClassCountMismatchError(
                f"{checkpoint_path} holds a {file_classes}-class classifier but {model_name} has {trained_classes} "
                "classes", file_classes)
        overlay.update(file=str(checkpoint_path), num_classes=file_classes or trained_classes)
    if local is not None:
        overlay["sha256"] = hub.recorded_sha256(hub.local_weights_file(local))
    model = timm.create_model(
        timm_name, pretrained=pretrained or local is not None, pretrained_cfg=cfg,
        pretrained_cfg_overlay=overlay or None, num_classes=num_classes, **kwargs,
    )
    if with_heads:
        if not (pretrained or local is not None):
            raise hub.WeightsNotAvailableError("with_heads=True needs weights: pass pretrained=True or checkpoint_path")
        _load_heads(model, Path(local) if local is not None else None, repo_id)
    if logit_adjust is not None or tau_norm is not None:
        from .data.benchmark_sets import train_class_counts
        from .evaluation.posthoc import apply_posthoc

        zoo_name = model.pretrained_cfg.get("zoo_name")
        if zoo_name is None:
            raise ValueError(f"{model_name} records no zoo name, so its training class counts are unknown; "
                             "post-hoc adjustment needs a zoo release")
        entry, tag = registry.resolve(zoo_name)
        apply_posthoc(model, train_class_counts(entry.dataset, imb_factor_of(entry.dataset, tag)),
                      logit_adjust=logit_adjust,
                      tau_norm=tau_norm)
    return model
