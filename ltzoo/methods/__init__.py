"""Training methods: one module per method, each declaring its zoo names with `ltzoo.registry.register_method`.

Importing this package imports every method module, which fills `ltzoo.registry.METHODS` (`import ltzoo` does it);
`build_method` then builds a method from its declaration: the class, the options its name binds, the classifier
scale its loss must match, and the config's options, each checked to exist, to apply and to be in range.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from .. import registry
from .base import TrainingMethod, TrainSet, unwrap

# Registration order is the results table's order: the baselines first.
# isort: off
from .supervised import SupervisedMethod, build_base_loss
from .bcl import BCLMethod
from .concutmix import ConCutMixMethod
from .paired import PairedMinorityMethod, PairedOptions
from .cmo import CMO
from .smcl import SMCL
from .lsm import LSMMethod
from .dscl import DSCLMethod, DSCLProbe
# isort: on


def _declaration(name: str) -> registry.Method:
    if name not in registry.METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(registry.METHODS))}")
    return registry.METHODS[name]


def _bound(method: registry.Method) -> dict[str, Any]:
    """The constructor values the declaration fixes: the options its name binds and, where the class takes one, the
    scale of its cosine classifier (so the loss and the model read one number)."""
    bound = dict(method.options)
    if method.classifier == "cosine" and "scale" in method.cls.option_defaults():
        bound["scale"] = method.cosine_scale
    return bound


def _options(method: registry.Method) -> dict[str, Any]:
    """The config options of a method and their defaults (`inspect.Parameter.empty`: required): its class's options
    but those its declaration fixes."""
    bound = _bound(method)
    return {k: v for k, v in method.cls.option_defaults().items() if k not in bound}


def method_defaults(name: str) -> dict[str, Any]:
    """What each option of a method is when a config leaves it out (with the choices its name binds), so a config
    written before an option existed reads as that option's default."""
    method = _declaration(name)
    defaults = {k: v for k, v in _options(method).items() if v is not inspect.Parameter.empty}
    return {**defaults, **_bound(method)}


def check_method_options(name: str, options: Mapping[str, Any], global_batch: int | None = None) -> None:
    """Check a method's options without any data (what a config load and `build_method` run): an unknown option, one
    the name fixes, one that does nothing given the others (e.g. `drw_start` without DRW), a missing one, or a value
    out of its range (or, given the global batch size, one that does not fit it) is a one-line ValueError naming
    it and the real options."""
    method = _declaration(name)
    bound, allowed = _bound(method), _options(method)
    fixed = sorted(set(options) & set(bound))
    if fixed:
        raise ValueError(f"method {name!r} fixes {', '.join(f'{k}={bound[k]!r}' for k in fixed)} (its declaration "
                         f"binds it); its options are {sorted(allowed)}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    given = {**method_defaults(name), **options}
    missing = sorted(set(allowed) - set(given))
    if missing:
        raise ValueError(f"method {name!r} needs option(s) {missing}")
    try:
        method.cls.check_options(given)
        if global_batch is not None:
            method.cls.check_batch(given, global_batch)
    except ValueError as e:
        raise ValueError(f"method {name!r}: {e}") from None
    unused = method.cls.unused_options(given)
    idle = sorted(set(options) & set(unused))
    if idle:
        reasons = "; ".join(f"{k}: {unused[k]}" for k in idle)
        raise ValueError(f"method {name!r} does not use {idle} ({reasons}); its options are "
                         f"{sorted(set(allowed) - set(unused))}")


def build_method(name: str, class_counts: Sequence[int], epochs: int, **options: Any) -> TrainingMethod:
    """Build a method by name from its declaration, its options checked first (`check_method_options`)."""
    check_method_options(name, options)
    method = _declaration(name)
    return method.cls(class_counts=class_counts, epochs=epochs, **_bound(method), **options)


__all__ = [
    "BCLMethod", "CMO", "ConCutMixMethod", "DSCLMethod", "DSCLProbe", "LSMMethod", "PairedMinorityMethod",
    "PairedOptions", "SMCL", "SupervisedMethod", "TrainSet", "TrainingMethod", "build_base_loss", "build_method",
    "check_method_options", "method_defaults", "unwrap",
]
