"""The method registry: each method declares itself once, beside its class, and a name builds its method from that
declaration; options that do not exist, that the name fixes, or that do nothing are errors, never ignored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ltzoo import hub, registry
from ltzoo.methods import SupervisedMethod, build_method, method_defaults

COUNTS = [20, 10, 5]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A copy of the method table that a test may register into; the real one is restored afterwards."""
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    registry._entries.cache_clear()
    yield
    monkeypatch.undo()
    registry._entries.cache_clear()


def test_a_methods_defaults_include_the_choices_its_name_binds():
    assert method_defaults("ce_drw")["drw"] is True and method_defaults("ce")["drw"] is False
    assert method_defaults("ce_drw")["drw_start"] == 160


def test_a_methods_defaults_are_its_constructors():
    assert method_defaults("smcl")["aug_end"] == 3


def test_an_unknown_method_names_the_available_ones():
    with pytest.raises(ValueError, match="unknown method 'smlc'; available: .*smcl"):
        build_method("smlc", [5, 1], epochs=1)


def test_the_defaults_of_an_unknown_method_name_the_available_ones():
    with pytest.raises(ValueError, match="unknown method 'smlc'"):
        method_defaults("smlc")


def test_drw_start_on_a_method_without_drw_is_an_error_naming_its_real_options():
    with pytest.raises(ValueError, match=r"'ce_lsm' does not use \['drw_start'\] \(drw_start: deferred re-weighting "
                                         r"is off\); its options are \[.*'mix_end'.*\]") as error:
        build_method("ce_lsm", COUNTS, 10, drw_start=160)
    assert "'drw_start'" not in str(error.value).split("its options are")[1]


def test_drw_start_on_plain_cross_entropy_is_an_error():
    with pytest.raises(ValueError, match=r"'ce' does not use \['drw_start'\]"):
        build_method("ce", COUNTS, 10, drw_start=100)


def test_a_margin_on_a_loss_without_one_is_an_error():
    with pytest.raises(ValueError, match=r"'ce_drw' does not use \['max_margin'\] \(max_margin: the ce loss has no"):
        build_method("ce_drw", COUNTS, 10, max_margin=0.3)


def test_an_option_the_name_binds_cannot_be_overridden():
    with pytest.raises(ValueError, match=r"method 'ce_drw' fixes loss='ce' \(its declaration binds it\)"):
        build_method("ce_drw", COUNTS, 10, loss="ldam")


def test_the_classifier_scale_is_the_declarations_and_not_an_option():
    method = build_method("ldam_drw", COUNTS, 10)
    assert method.loss.scale == registry.METHODS["ldam_drw"].cosine_scale == 30.0
    with pytest.raises(ValueError, match=r"'ldam_drw' fixes scale=30\.0"):
        build_method("ldam_drw", COUNTS, 10, scale=10.0)


def test_a_drw_option_a_drw_method_uses_is_accepted():
    assert build_method("ce_drw", COUNTS, 200, drw_start=80).drw.start_epoch == 80


def test_a_later_training_stage_is_declared_but_is_no_zoo_method():
    assert registry.METHODS["dscl_probe"].stage_of == "dscl"
    assert "dscl_probe" not in registry.zoo_methods()
    assert not registry.list_models("*dscl_probe*")


def test_the_entries_are_exactly_the_declared_recipes(scratch_registry: None):
    before = set(registry.list_models())
    registry.register_method("toy", SupervisedMethod, title="Toy", paper="arXiv:0000.00000", options={"loss": "ce"},
                             recipes=(registry.Recipe("resnet32", "cifar10_lt"),))
    registry.register_method("toy_nowhere", SupervisedMethod, title="Toy", paper="arXiv:0000.00000")
    assert set(registry.list_models()) - before == {"resnet32_toy_cifar10_lt"}


def test_a_method_cannot_be_registered_twice(scratch_registry: None):
    with pytest.raises(RuntimeError, match="method 'ce' is registered twice"):
        registry.register_method("ce", SupervisedMethod, title="CE", paper="arXiv:1906.07413")


def test_a_cosine_classifier_must_declare_its_scale(scratch_registry: None):
    with pytest.raises(ValueError, match="a cosine classifier needs its cosine_scale"):
        registry.register_method("toy", SupervisedMethod, title="Toy", paper="x", classifier="cosine")


def test_a_declaration_binds_only_options_its_class_takes(scratch_registry: None):
    with pytest.raises(ValueError, match=r"'toy' binds \['drw_strat'\], which SupervisedMethod does not take"):
        registry.register_method("toy", SupervisedMethod, title="Toy", paper="x", options={"drw_strat": 160})


def test_a_recipe_must_name_a_known_benchmark(scratch_registry: None):
    with pytest.raises(ValueError, match="unknown architecture 'resnet32' or benchmark 'cifar11_lt'"):
        registry.register_method("toy", SupervisedMethod, title="Toy", paper="x",
                                 recipes=(registry.Recipe("resnet32", "cifar11_lt"),))


def test_every_architecture_argument_a_declaration_gives_is_accepted_from_a_hub_config():
    """A release's config.json carries its entry's model_args; the Hub allow-list must accept all of them."""
    given = {key for entry in registry.entries() for key in entry.model_args}
    assert given <= hub.HUB_MODEL_ARGS
