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


def build_method(name: str, class_counts: Sequence[int], epochs: int, **options: Any) -> TrainingMethod:
    """Build a method by name; an option the method does not take is a clear error, not a silent no-op."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    factory = METHODS[name]
    target = factory.func if isinstance(factory, partial) else factory
    allowed = set(inspect.signature(target).parameters) - {"self", "class_counts", "epochs"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    return factory(class_counts=class_counts, epochs=epochs, **options)


__all__ = [
    "METHODS", "BCLMethod", "CMO", "ConCutMixMethod", "DSCLMethod", "DSCLProbe", "LSMMethod", "SMCL",
    "SupervisedMethod", "TrainSet", "TrainingMethod", "build_base_loss", "build_method", "unwrap",
]
