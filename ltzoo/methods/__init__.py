"""Training methods: one module per method, looked up by the name used in zoo entries and configs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from .base import TrainingMethod, TrainSet, unwrap
from .bcl import BCLMethod
from .cmo import CMO
from .concutmix import ConCutMixMethod
from .dscl import DSCLMethod, DSCLProbe
from .lsm import LSMMethod
from .paired import PairedMinorityMethod, PairedOptions
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


def _method_class(name: str) -> type[TrainingMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    factory = METHODS[name]
    return factory.func if isinstance(factory, partial) else factory


def _options(name: str) -> dict[str, Any]:
    """The config options of a method and their defaults (`inspect.Parameter.empty`: required)."""
    return _method_class(name).option_defaults()


def method_defaults(name: str) -> dict[str, Any]:
    """What each option of a method is when a config leaves it out (with the choices its name binds), so a config
    written before an option existed reads as that option's default."""
    options = _options(name)  # first: an unknown name is the named error, not a KeyError
    factory = METHODS[name]
    bound = factory.keywords if isinstance(factory, partial) else {}
    return {k: bound.get(k, default) for k, default in options.items()
            if k in bound or default is not inspect.Parameter.empty}


def check_method_options(name: str, options: Mapping[str, Any], global_batch: int | None = None) -> None:
    """Check a method's options without any data (what a config load runs): an unknown or missing option, or a value
    out of its range (or, given the global batch size, one that does not fit it), is a one-line ValueError naming
    it."""
    allowed = _options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    given = {**method_defaults(name), **options}
    missing = sorted(set(allowed) - set(given))
    if missing:
        raise ValueError(f"method {name!r} needs option(s) {missing}")
    try:
        _method_class(name).check_options(given)
        if global_batch is not None:
            _method_class(name).check_batch(given, global_batch)
    except ValueError as e:
        raise ValueError(f"method {name!r}: {e}") from None


def build_method(name: str, class_counts: Sequence[int], epochs: int, **options: Any) -> TrainingMethod:
    """Build a method by name; an option the method does not take is a clear error, not a silent no-op."""
    allowed = set(_options(name))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    return METHODS[name](class_counts=class_counts, epochs=epochs, **options)


__all__ = [
    "METHODS", "BCLMethod", "CMO", "ConCutMixMethod", "DSCLMethod", "DSCLProbe", "LSMMethod", "PairedMinorityMethod",
    "PairedOptions", "SMCL", "SupervisedMethod", "TrainSet", "TrainingMethod", "build_base_loss", "build_method",
    "check_method_options", "method_defaults", "unwrap",
]
