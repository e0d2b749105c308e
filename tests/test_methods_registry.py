"""The method registry: a name builds its method, and a config that leaves an option out reads as its default."""

from __future__ import annotations

import pytest

from ltzoo.methods import build_method, method_defaults


def test_a_methods_defaults_include_the_choices_its_name_binds():
    assert method_defaults("ce_drw")["drw_start"] == 160 and method_defaults("ce")["drw_start"] is None


def test_a_methods_defaults_are_its_constructors():
    assert method_defaults("smcl")["aug_end"] == 3


def test_an_unknown_method_names_the_available_ones():
    with pytest.raises(ValueError, match="unknown method 'smlc'; available: .*smcl"):
        build_method("smlc", [5, 1], epochs=1)


def test_the_defaults_of_an_unknown_method_name_the_available_ones():
    with pytest.raises(ValueError, match="unknown method 'smlc'"):
        method_defaults("smlc")
