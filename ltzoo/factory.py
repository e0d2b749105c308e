"""create_model: resolve a zoo name (or `hf-hub:` id), build the timm architecture, load verified weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn

from . import hub, registry
from .models import build_train_heads

HF_HUB_PREFIX = "hf-hub:"


def _zoo_name_of_repo(repo_id: str) -> str | None:
    """The registry name behind a Hub repo id in the zoo's namespace, if any."""
    namespace, _, repo = repo_id.partition("/")
    if namespace == registry.hub_namespace() and registry.is_model(repo) and "." in repo:
        return repo
    return None


def _hub_source(repo_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Download config.json of an `hf-hub:` repo and split it into (timm arch + args, ltzoo pretrained cfg)."""
    config = hub.read_config(hub.download(repo_id, hub.CONFIG_NAME))
    meta = config.get("ltzoo", {})
    cfg = dict(config.get("pretrained_cfg", {}))
    cfg.update(architecture=config["architecture"], hf_hub_id=repo_id, num_classes=config["num_classes"])
    zoo_name = _zoo_name_of_repo(repo_id)
    registered_sha = registry.get_pretrained_cfg(zoo_name)["sha256"] if zoo_name else None
    cfg["sha256"] = registered_sha or meta.get("files", {}).get(hub.WEIGHTS_NAME)
    cfg.update(recipe=meta.get("recipe"), paper=meta.get("paper"), metrics=meta.get("metrics"), ltzoo=meta)
    return {"arch": config["architecture"], "model_args": config.get("model_args", {})}, cfg


def _weights_path(
    model_name: str, cfg: dict[str, Any], pretrained: bool, checkpoint_path: str | Path | None
) -> tuple[Path, str | None, bool] | None:
    """Where the weights come from, in order: overlay file > checkpoint_path > Hub. Returns (path, sha256, from Hub)."""
    if pretrained and cfg.get("file"):
        return Path(cfg["file"]), None, False
    if checkpoint_path is not None:
        return Path(checkpoint_path), None, False
    if not pretrained:
        return None
    if not cfg.get("sha256"):
        raise hub.WeightsNotAvailableError(
            f"{model_name} has no published weights yet. Train them with:\n"
            f"    {registry.get_entry(model_name).train_command(cfg['tag'])}\n"
            "then load the result with create_model(..., checkpoint_path='releases/<name>.<tag>/model.safetensors')."
        )
    return hub.download(cfg["hf_hub_id"], hub.WEIGHTS_NAME), cfg["sha256"], True


def _load_heads(model: nn.Module, weights: Path, cfg: dict[str, Any], from_hub: bool) -> None:
    """Attach and load the training-only heads that belong to the weights: from the same Hub release, or from the
    heads.safetensors and config.json beside a local weights file (never a Hub release's heads for local weights)."""
    if from_hub:
        meta = cfg.get("ltzoo") or hub.read_config(hub.download(cfg["hf_hub_id"], hub.CONFIG_NAME)).get("ltzoo", {})
        heads_file = hub.download(cfg["hf_hub_id"], hub.HEADS_NAME) if meta.get("heads") else None
    else:
        config_file, heads_file = weights.with_name(hub.CONFIG_NAME), weights.with_name(hub.HEADS_NAME)
        if not (config_file.is_file() and heads_file.is_file()):
            raise hub.WeightsNotAvailableError(
                f"with_heads=True loads the training-only heads saved with {weights}: {hub.HEADS_NAME} and "
                f"{hub.CONFIG_NAME} must sit beside it (as in a release folder written by save_pretrained)")
        meta = hub.read_config(config_file).get("ltzoo", {})
    if not meta.get("heads"):
        raise hub.WeightsNotAvailableError(
            f"{weights} comes without training-only heads (no `heads` in its config.json)")
    model.train_heads.update(build_train_heads(meta["heads"]))
    expected = meta.get("files", {}).get(hub.HEADS_NAME)
    state = hub.load_safetensors(heads_file, expected)
    model.train_heads.load_state_dict(state, strict=True)


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
    `num_classes` different from the checkpoint's keeps the backbone and re-initialises the classifier.
    `with_heads` also loads the training-only heads (`heads.safetensors`). `logit_adjust=τ` makes the model predict
    z − τ·log π and `tau_norm=τ` τ-normalises a linear head (π and the counts: the benchmark's training class counts;
    ltzoo.evaluation.posthoc). Extra kwargs go to the architecture.
    """
    if model_name.startswith(HF_HUB_PREFIX):
        source, cfg = _hub_source(model_name[len(HF_HUB_PREFIX):])
        arch, model_args = source["arch"], dict(source["model_args"])
    else:
        cfg = registry.get_pretrained_cfg(model_name)
        entry = registry.get_entry(model_name)
        arch, model_args = entry.timm_arch, entry.model_args
    cfg.update(pretrained_cfg_overlay or {})
    model_args.update(kwargs)
    trained_classes = cfg["num_classes"]
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes or trained_classes, **model_args)

    located = _weights_path(model_name, cfg, pretrained, checkpoint_path)
    if located is not None:
        path, sha, from_hub = located
        state = hub.load_safetensors(path, sha)
        file_classes = hub.checkpoint_num_classes(state)
        if num_classes is None and file_classes not in (None, trained_classes):
            raise hub.ClassCountMismatchError(
                f"{path} holds a {file_classes}-class classifier but {model_name} has {trained_classes} classes. "
                f"Pass num_classes={file_classes} to use it as is, or another count to re-initialise the head."
            )
        hub.load_into(model, state, str(path), adapt_head=file_classes != model.num_classes)
        if with_heads:
            _load_heads(model, path, cfg, from_hub)
    elif with_heads:
        raise hub.WeightsNotAvailableError("with_heads=True needs weights: pass pretrained=True or checkpoint_path")

    cfg["num_classes"] = model.num_classes
    model.pretrained_cfg = model.default_cfg = cfg
    if logit_adjust is not None or tau_norm is not None:
        from .evaluation.posthoc import apply_posthoc, benchmark_train_counts

        meta = cfg.get("ltzoo") or {}
        dataset = meta.get("dataset") or registry.get_entry(model_name).dataset
        imb_factor = cfg.get("imb_factor") or meta.get("config", {}).get("data", {}).get("imb_factor")
        apply_posthoc(model, benchmark_train_counts(dataset, imb_factor), logit_adjust=logit_adjust, tau_norm=tau_norm)
    return model
