"""The method interface: what a method needs (views, heads) and its training step."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from ..augment.views import cifar_train_transform
from ..data.batch_transforms import BatchTransform
from ..data.loader import Batch


def unwrap(model: nn.Module) -> nn.Module:
    """The ltzoo model inside DDP / torch.compile wrappers (to reach `fc`, `train_heads`, …)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


@dataclass
class TrainSet:
    """The training split as a method sees it, for methods that draw a second stream (CMO, SMCL, LSM, ConCutMix).

    CIFAR: `images` holds the uint8 (N, H, W, C) arrays (build an `ArrayLoader` over them); split-file benchmarks:
    `dataset` is the torch Dataset. `batch_size` is per process; streams must shard by `rank` / `world_size` and
    deliver their batches on `device`, the training device.
    """

    labels: np.ndarray
    batch_size: int
    seed: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    images: np.ndarray | None = None
    dataset: Any = None
    rank: int = 0
    world_size: int = 1
    channels_last: bool = True
    num_workers: int = 0
    device: torch.device | str = "cpu"


class TrainingMethod:
    """A long-tail training method: `training_step(model, batch, epoch) -> (loss, logs)`.

    The base implementation is the plain supervised pipeline: crop+flip views, no extra heads, no state.
    """

    name = "base"
    exports_release = True  # False for a stage whose weights are not a zoo model yet (DSCL stage 1)
    drop_last = False  # True drops each epoch's last, smaller batch (DSCL stage 1: whole batches for the key queue)

    def __init__(self, class_counts: Sequence[int], epochs: int) -> None:
        self.class_counts = torch.as_tensor(list(class_counts), dtype=torch.long)
        self.num_classes = len(self.class_counts)
        self.epochs = epochs

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """The method's config options, each with its default (`inspect.Parameter.empty` for a required one): the
        constructor's keywords after `class_counts` and `epochs`."""
        parameters = inspect.signature(cls.__init__).parameters
        return {k: p.default for k, p in parameters.items()
                if k not in ("self", "class_counts", "epochs") and p.kind is not p.VAR_KEYWORD}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Check every option's value without data (the constructor runs the same check): a one-line ValueError
        naming the option, its value and what is allowed. `options` holds all of them, defaults filled in."""

    @classmethod
    def check_batch(cls, options: Mapping[str, Any], global_batch: int) -> None:
        """Check options that depend on the global batch size (e.g. DSCL's queue size), without data."""

    @classmethod
    def unused_options(cls, options: Mapping[str, Any]) -> dict[str, str]:
        """The options that do nothing given the others (all of them resolved: bound, given and defaults), each with
        the reason, e.g. `drw_start` where deferred re-weighting is off: setting one is an error, never ignored."""
        return {}

    def cifar_transform(self, mean: Sequence[float], std: Sequence[float]) -> BatchTransform:
        """The batched CIFAR training transform (its output is `batch.images`)."""
        return cifar_train_transform(mean, std)

    def image_transform(self, mean: Sequence[float], std: Sequence[float], size: int = 224) -> Any:
        """Per-image training views for split-file benchmarks (may return a tuple of views); None keeps the
        benchmark's standard training transform."""
        return None

    def train_sampler(self, labels: np.ndarray, seed: int) -> Sampler[int] | None:
        """The main loader's global index order per epoch (sharded over processes by the loader), e.g. class-balanced
        draws for a probe; None keeps the plain per-epoch shuffle."""
        return None

    def heads_spec(self, num_features: int) -> dict[str, dict[str, Any]] | None:
        """Training-only heads this method attaches to the model (JSON-able, see `build_train_heads`)."""
        return None

    def bind_data(self, train_set: TrainSet) -> None:
        """Called once before training with the training split; methods with a second stream build it here."""

    def prepare_model(self, model: nn.Module) -> None:
        """Called once on the fresh model (heads attached, before the optimizer, device placement and any resume):
        e.g. a second stage loads the first stage's weights and freezes parameters (requires_grad False parameters
        stay out of the optimizer), or a method builds state that mirrors the model."""

    def on_epoch_start(self, epoch: int) -> None:
        """Per-epoch schedule changes (e.g. DRW weights, a second stream's `set_epoch`)."""

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} is stateless but was given state {sorted(state)}")
