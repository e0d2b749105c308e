"""Learning-rate schedules as pure functions of the (fractional) epoch, applied per iteration.

A schedule holds no state, so resuming needs only the epoch and iteration. The training loop calls
`set_lr(optimizer, schedule.lr_at(epoch, iteration, iters_per_epoch))` before every step.
"""

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer


class LRSchedule:
    """Interface: the learning rate at 0-based `epoch` and `iteration` within it."""

    def lr_at(self, epoch: int, iteration: int = 0, iters_per_epoch: int = 1) -> float:
        """Learning rate for this step."""
        raise NotImplementedError


def _fractional_epoch(epoch: int, iteration: int, iters_per_epoch: int) -> float:
    """f = epoch + iteration / iters_per_epoch."""
    if iters_per_epoch < 1 or not 0 <= iteration < iters_per_epoch:
        raise ValueError(f"need 0 <= iteration < iters_per_epoch, got {iteration} and {iters_per_epoch}")
    return epoch + iteration / iters_per_epoch


@dataclass
class WarmupStepLR(LRSchedule):
    """lr(e) = base · min(1, (e+1)/W) · Π_{j: e ≥ m_j} γ_j (docs/methods/baselines.md §5; BCL/ConCutMix step form).

    e is the integer epoch (the LR is set once per epoch, as in the reference codes); with
    `per_iteration` the same formula is evaluated at the fractional epoch, so the warm-up ramps smoothly.
    W = 0 means no warm-up.
    """

    base_lr: float
    warmup_epochs: int
    milestones: Sequence[int] = ()
    gammas: Sequence[float] = ()
    per_iteration: bool = False

    def __post_init__(self) -> None:
        self.milestones = tuple(self.milestones)
        self.gammas = tuple(self.gammas)
        if len(self.milestones) != len(self.gammas):
            raise ValueError(f"{len(self.milestones)} milestones but {len(self.gammas)} gammas")

    def lr_at(self, epoch: int, iteration: int = 0, iters_per_epoch: int = 1) -> float:
        f = _fractional_epoch(epoch, iteration, iters_per_epoch) if self.per_iteration else epoch
        lr = self.base_lr
        if self.warmup_epochs > 0:
            lr *= min(1.0, (f + 1) / self.warmup_epochs)
        for milestone, gamma in zip(self.milestones, self.gammas):
            if f >= milestone:
                lr *= gamma
        return lr


@dataclass
class WarmupCosineLR(LRSchedule):
    """BCL/ConCutMix `adjust_lr`, per integer epoch e (docs/methods/concutmix.md §2.4):

    e < W: base·(e+1)/W; else base·0.5·(1 + cos(π·(e − W + 1)/(E − W + 1))), the +1 offsets kept.
    """

    base_lr: float
    epochs: int
    warmup_epochs: int = 0

    def lr_at(self, epoch: int, iteration: int = 0, iters_per_epoch: int = 1) -> float:
        e, warm = epoch, self.warmup_epochs
        if e < warm:
            return self.base_lr * (e + 1) / warm
        progress = (e - warm + 1) / (self.epochs - warm + 1)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class IterWarmupCosineLR(LRSchedule):
    """DSCL's per-iteration schedule on f = epoch + i/iters (docs/methods/dscl.md §2.6):

    f < W: base·f/W (exactly 0 at the first step); else base·0.5·(1 + cos(π·(f − W)/(E − W))).
    """

    base_lr: float
    epochs: int
    warmup_epochs: int = 0

    def lr_at(self, epoch: int, iteration: int = 0, iters_per_epoch: int = 1) -> float:
        f, warm = _fractional_epoch(epoch, iteration, iters_per_epoch), self.warmup_epochs
        if f < warm:
            return self.base_lr * f / warm
        progress = (f - warm) / (self.epochs - warm)
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, type[LRSchedule]] = {
    "warmup_step": WarmupStepLR,
    "warmup_cosine": WarmupCosineLR,
    "iter_warmup_cosine": IterWarmupCosineLR,
}


def build_scheduler(cfg: dict[str, Any], base_lr: float, epochs: int) -> LRSchedule:
    """Build a schedule from a config's plain dict {"name": <one of SCHEDULES>, **its other fields}.

    The base LR and the run's length come from the caller (a config's optim.lr and epochs), so a schedule that
    needs the length never carries a second copy of it that an `epochs=` override would leave behind.
    """
    options = dict(cfg)
    name = options.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule name {name!r}; expected one of {sorted(SCHEDULES)}")
    schedule_cls = SCHEDULES[name]
    fields = {field.name for field in dataclasses.fields(schedule_cls)}
    allowed = fields - {"base_lr", "epochs"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for schedule {name!r}; allowed: {sorted(allowed)} (base_lr is "
                         "optim.lr and epochs the config's epochs)")
    if "epochs" in fields:
        options["epochs"] = epochs
    _check_ranges(name, options)
    return schedule_cls(base_lr=base_lr, **options)


def _check_ranges(name: str, options: dict[str, Any]) -> None:
    """A schedule's values in range before training starts: a whole warm-up >= 0, milestones >= 0, gammas > 0."""
    def numbers(key: str) -> list[Any]:
        value = options.get(key, ())
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for key, ok, requirement in (("warmup_epochs", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
                                 ("milestones", lambda v: is_number(v) and v >= 0, "numbers >= 0"),
                                 ("gammas", lambda v: is_number(v) and v > 0, "numbers > 0")):
        bad = [v for v in numbers(key) if not ok(v) or isinstance(v, bool)]
        if key in options and bad:
            raise ValueError(f"schedule {name!r}: {key} must be {requirement}, got {options[key]!r}")


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set every param group's LR to lr · group["lr_scale"] (default 1), e.g. a backbone at 0.01× the head."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
