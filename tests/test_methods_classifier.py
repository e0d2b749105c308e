"""Methods refuse a classifier their loss is not defined on, before training (LDAM needs s·cosine logits)."""

from __future__ import annotations

import pytest

import ltzoo
from ltzoo.methods import build_method

COUNTS = [50, 20, 5]


@pytest.mark.parametrize(("method", "options"), [("ldam_drw", {}), ("smcl", {"base_loss": "ldam_drw"}),
                                                 ("ldam_drw_lsm", {})])
def test_ldam_on_a_linear_classifier_is_refused_with_the_config_fix(method: str, options: dict):
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3)  # linear classifier
    with pytest.raises(ValueError, match=r"`model: \{classifier: cosine, cosine_scale: 30\}`"):
        build_method(method, COUNTS, 10, **options).prepare_model(model)


def test_ldam_on_a_cosine_classifier_of_another_scale_is_refused():
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3, classifier="cosine")  # raw cosine, s = 1
    with pytest.raises(ValueError, match="cosine classifier of scale 1"):
        build_method("ldam_drw", COUNTS, 10).prepare_model(model)


@pytest.mark.parametrize(("method", "options"), [("ldam_drw", {}), ("smcl", {"base_loss": "ldam_drw"})])
def test_ldam_on_the_cosine_classifier_of_its_scale_is_accepted(method: str, options: dict):
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3, classifier="cosine", cosine_scale=30.0)
    build_method(method, COUNTS, 10, **options).prepare_model(model)


def test_ldam_zoo_entries_build_the_cosine_classifier_of_the_loss_scale():
    for name in ltzoo.list_models("*ldam*"):
        build_method("ldam_drw", COUNTS, 10).prepare_model(ltzoo.create_model(name, num_classes=3))


def test_other_losses_take_either_classifier():
    build_method("ce_drw", COUNTS, 10).prepare_model(ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3))
