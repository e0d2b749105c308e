"""Training methods: one module per method, looked up by the name used in zoo entries and configs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .base import TrainingMethod, TrainSet, unwrap
from .bcl import BCLMethod
from .cmo import CMO
from .concutmix import ConCutMixMethod
from .dscl import DSCLMethod, DSCLProbe
from .lsm import LSMMethod
from .smcl import SMCL
from .supervised import SupervisedMethod, build_base_loss

# method name -> constructor with the method's fixed choices bound
METHODS: dict[str, Callable[..., TrainingMethod]] = {
    "ce": partial(SupervisedMethod, loss="ce"),
    "ce_drw": partial(SupervisedMethod, loss="ce", drw_start=160),
    "ldam_drw": partial(SupervisedMethod, loss="ldam", drw_start=160),
    "bsce": partial(SupervisedMethod, loss="bs"),
    "ce_lsm": partial(LSMMethod, base_loss="ce"),
    "ce_drw_lsm": partial(LSMMethod, base_loss="ce_drw"),
    "ldam_drw_lsm": partial(LSMMethod, base_loss="ldam_drw"),
    "bcl": BCLMethod,
    "concutmix": ConCutMixMethod,
    "dscl": DSCLMethod,
    "dscl_probe": DSCLProbe,
    "smcl": SMCL,
}


def _options(name: str) -> dict[str, inspect.Parameter]:
    """The config options of a method: its constructor's parameters but the two every method gets."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    factory = METHODS[name]
    target = factory.func if isinstance(factory, partial) else factory
    parameters = inspect.signature(target).parameters
    return {k: p for k, p in parameters.items() if k not in ("self", "class_counts", "epochs")}


def method_defaults(name: str) -> dict[str, Any]:
    """What each option of a method is when a config leaves it out (with the choices its name binds), so a config
    written before an option existed reads as that option's default."""
    options = _options(name)  # first: an unknown name is the named error, not a KeyError
    factory = METHODS[name]
    bound = factory.keywords if isinstance(factory, partial) else {}
    return {k: bound.get(k, p.default) for k, p in options.items()
            if k in bound or p.default is not inspect.Parameter.empty}


def build_method(name: str, class_counts: Sequence[int], epochs: int, **options: Any) -> TrainingMethod:
    """Build a method by name; an option the method does not take is a clear error, not a silent no-op."""
    allowed = set(_options(name))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    return METHODS[name](class_counts=class_counts, epochs=epochs, **options)


__all__ = [
    "METHODS", "BCLMethod", "CMO", "ConCutMixMethod", "DSCLMethod", "DSCLProbe", "LSMMethod", "SMCL",
    "SupervisedMethod", "TrainSet", "TrainingMethod", "build_base_loss", "build_method", "method_defaults", "unwrap",
]
