"""What a training run is built from and how it steps: the config's data, its method, its model with the method's
training-only heads, the optimizer with its parameter groups (`build_run`), and one SGD step (`train_step`). The
epoch loop (training/train.py), the benchmarks that train or re-measure a recipe's model (benchmarks/bn_statistics.py,
benchmarks/gpu_check.py) and the tests that follow a run step by step build and step here, so they build the same
objects and take the same step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ltzoo
from ltzoo import registry
from ltzoo.methods import TrainingMethod, build_method
from ltzoo.scheduler import set_lr
from training import checkpoint
from training.config import TrainConfig
from training.data import TrainData, build_data


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


@dataclass
class Run:
    """A run's objects as `build_run` makes them (train.py then hands the model and optimizer to accelerate's
    `prepare` and steps the prepared pair)."""

    data: TrainData
    method: TrainingMethod
    loader: Any  # data.make_train(method): set_epoch(epoch), then an epoch of the method's batches
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer


def build_run(cfg: TrainConfig, device: torch.device, rank: int = 0, world_size: int = 1) -> Run:
    """The config's run for process `rank` of `world_size`, in train.py's order (data, method, loader, model with
    its heads on `device`, SGD), so the same seed draws the same initial weights. A missing dataset is the
    `build_data` error; a loader with no step (a method that drops the last smaller batch, on fewer images than a
    batch) is a ValueError saying what to change."""
    data = build_data(cfg, registry.get_pretrained_cfg(cfg.full_name), rank, world_size, device)
    method = build_config_method(cfg, data.class_counts)
    loader = data.make_train(method)
    if len(loader) == 0:
        raise ValueError(f"the {int(data.class_counts.sum())} training images make no full batch of "
                         f"{cfg.data.batch_size} for {cfg.method['name']} (it drops the last smaller batch); "
                         "lower data.batch_size or raise data.subset")
    model = build_training_model(cfg, method).to(device)
    return Run(data, method, loader, model, build_optimizer(cfg, model))


def train_step(method: TrainingMethod, train_model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any,
               epoch: int, lr: float,
               autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
               backward: Callable[[torch.Tensor], None] = torch.Tensor.backward) -> tuple[torch.Tensor, dict]:
    """One SGD step: the schedule's `lr` into every parameter group (at its `lr_scale`), the method's loss with its
    logs under `autocast` (the forward only), `backward` (a launched run passes accelerate's), the optimizer step.
    `train_model` may be `torch.compile(model)`; the optimizer holds the plain model's parameters."""
    set_lr(optimizer, lr)
    with autocast():
        loss, logs = method.training_step(train_model, batch, epoch)
    optimizer.zero_grad(set_to_none=True)
    backward(loss)
    optimizer.step()
    return loss, logs
