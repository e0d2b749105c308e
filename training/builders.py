"""What a training run is built from: the config's method, its model with the method's training-only heads, and the
optimizer with its parameter groups. The epoch loop (training/train.py) and the benchmarks that train or re-measure a
recipe's model (benchmarks/bn_statistics.py, benchmarks/gpu_check.py) build them here, so they build the same objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import ltzoo
from ltzoo.methods import TrainingMethod, build_method
from training import checkpoint
from training.config import TrainConfig


def build_config_method(cfg: TrainConfig, class_counts: Any) -> TrainingMethod:
    """The config's method, built with its `method:` options for these training class counts; a later stage's
    `init_from` (a checkpoint folder or a weights file) is handed over as the verified weights file it names."""
    options = {k: v for k, v in cfg.method.items() if k != "name"}
    if "init_from" in options:
        options["init_from"] = str(checkpoint.stage_weights(options["init_from"]))
    return build_method(cfg.method["name"], class_counts, cfg.epochs, **options)


def build_training_model(cfg: TrainConfig, method: TrainingMethod,
                         checkpoint: str | Path | None = None) -> torch.nn.Module:
    """The config's zoo model (from `checkpoint` if given) with the method's training-only heads, in the config's
    memory format, prepared by the method (e.g. DSCL's key encoder, the probe's frozen encoder)."""
    model = ltzoo.create_model(cfg.full_name, checkpoint_path=checkpoint, **cfg.model)
    heads_spec = method.heads_spec(model.head_hidden_size)
    if heads_spec:
        model.train_heads.update(ltzoo.models.build_train_heads(heads_spec))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    method.prepare_model(model)
    return model


def param_groups(model: torch.nn.Module, backbone_lr_scale: float) -> list[dict]:
    """Classifier (and embedding) at the base LR, the rest at `backbone_lr_scale` × base (ltzoo.scheduler.set_lr).
    Frozen parameters (requires_grad False, e.g. a linear probe's backbone) are not in the optimizer."""
    head_modules = [model.get_classifier(), getattr(model, "embed", None)]
    head_ids = {id(p) for module in head_modules if module is not None for p in module.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    head = [p for p in trainable if id(p) in head_ids]
    rest = [p for p in trainable if id(p) not in head_ids]
    return [{"params": rest, "lr_scale": backbone_lr_scale}, {"params": head, "lr_scale": 1.0}]


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The config's SGD over `param_groups(model, ...)` (the head at the base LR, the backbone at its scale)."""
    return torch.optim.SGD(param_groups(model, cfg.optim.backbone_lr_scale), lr=cfg.optim.lr,
                           momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay,
                           nesterov=cfg.optim.nesterov)
