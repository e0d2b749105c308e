"""`la`, logit-adjusted cross-entropy (Menon et al.) as a zoo method: CE on the logits shifted by τ·log π."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ltzoo import registry
from ltzoo.losses import BalancedSoftmaxLoss
from ltzoo.methods import build_method

COUNTS = [60, 25, 10, 5]
LOGITS = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [-1.0, 3.0, 0.0, 1.0]])
TARGET = torch.tensor([0, 3, 1])


def log_prior() -> torch.Tensor:
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    return (counts / counts.sum()).log().float()


def test_the_la_loss_adds_tau_times_the_log_prior_to_the_logits():
    method = build_method("la", COUNTS, 200, tau=0.5)
    expected = F.cross_entropy(LOGITS + 0.5 * log_prior(), TARGET)
    torch.testing.assert_close(method.loss(LOGITS, TARGET), expected)


def test_la_defaults_to_tau_one_without_drw():
    method = build_method("la", COUNTS, 200)
    assert method.loss.tau == 1.0 and method.drw is None
    torch.testing.assert_close(method.loss(LOGITS, TARGET), F.cross_entropy(LOGITS + log_prior(), TARGET))


def test_at_tau_one_la_is_the_balanced_softmax_loss():
    """The identity the docs state: log π and log n differ by a constant, which softmax ignores."""
    torch.testing.assert_close(build_method("la", COUNTS, 200).loss(LOGITS, TARGET),
                               BalancedSoftmaxLoss(COUNTS)(LOGITS, TARGET))


def test_tau_is_an_error_on_a_loss_without_it():
    with pytest.raises(ValueError, match=r"'bsce' does not use \['tau'\]"):
        build_method("bsce", COUNTS, 200, tau=0.5)


def test_drw_start_is_an_error_on_la():
    with pytest.raises(ValueError, match=r"'la' does not use \['drw_start'\]"):
        build_method("la", COUNTS, 200, drw_start=160)


def test_la_has_the_cifar_entries_and_no_imagenet_entry():
    assert registry.list_models("*_la_*") == ["resnet32_la_cifar100_lt", "resnet32_la_cifar10_lt"]
    entry = registry.get_entry("resnet32_la_cifar10_lt")
    assert entry.tags == ("if100", "if50", "if10") and entry.model_args == {"classifier": "linear"}
    assert entry.ltzoo_recipe and "1241" in entry.ltzoo_recipe
