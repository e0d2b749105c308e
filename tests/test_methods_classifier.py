"""Methods refuse a classifier their loss is not defined on, before training (LDAM needs cosine logits)."""

from __future__ import annotations

import pytest

import ltzoo
from ltzoo.methods import build_method

COUNTS = [50, 20, 5]


@pytest.mark.parametrize(("method", "options"), [("ldam_drw", {}), ("smcl", {"base_loss": "ldam_drw"}),
                                                 ("ldam_drw_lsm", {})])
def test_ldam_on_a_linear_classifier_is_refused_with_the_config_fix(method: str, options: dict):
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3)  # linear classifier
    with pytest.raises(ValueError, match=r"`model: \{classifier: cosine\}`"):
        build_method(method, COUNTS, 10, **options).prepare_model(model)


@pytest.mark.parametrize(("method", "options"), [("ldam_drw", {}), ("smcl", {"base_loss": "ldam_drw"})])
def test_ldam_on_the_cosine_classifier_is_accepted(method: str, options: dict):
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3, classifier="cosine")
    build_method(method, COUNTS, 10, **options).prepare_model(model)


def test_other_losses_take_either_classifier():
    build_method("ce_drw", COUNTS, 10).prepare_model(ltzoo.create_model("resnet32_ce_cifar10_lt", num_classes=3))
