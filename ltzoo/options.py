"""One-line checks of option values, shared by the training methods and the paired-mixing engine, so that every bad
option reads alike (`name must be <range>, got <value>`) and can be checked from a config before any data loads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def check_choice(option: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise a one-line ValueError naming `option`, `value` and the choices unless `value` is one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"unknown {option} {value!r}; choose one of {', '.join(map(str, allowed))}")


def check_number(option: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Raise a one-line ValueError naming `option`, `value` and the allowed range unless `value` is a finite number
    (an int where `integer`) within [low, high] (an open end where `low_open` / `high_open`; None: unbounded)."""
    if low is not None and high is not None:
        requirement = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        requirement = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        requirement = f"{'<' if high_open else '<='} {high:g}"
    else:
        requirement = "finite"
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not math.isfinite(value):
        raise ValueError(f"{option} must be {kind} {requirement}, got {value!r}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise ValueError(f"{option} must be {requirement}, got {value!r}")


def check_pair(option: str, value: Any, low: float, high: float) -> None:
    """Raise unless `value` is a pair (a, b) of numbers with low <= a <= b <= high (a scale range, e.g. a crop's)."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or not low <= value[0] <= value[1] <= high):
        raise ValueError(f"{option} must be a pair [a, b] with {low:g} <= a <= b <= {high:g}, got {value!r}")


__all__ = ["check_choice", "check_number", "check_pair"]
