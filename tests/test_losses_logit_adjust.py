"""Logit adjustment, Balanced Softmax and post-hoc adjustment (docs/methods/baselines.md §4.3,
docs/methods/concutmix.md §4 item 5)."""

import math

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import BalancedSoftmaxLoss, LogitAdjustedLoss, log_class_prior, posthoc_logit_adjust

COUNTS = [60, 25, 10, 5]


def cifar_lt_counts(n_max: int, classes: int, imbalance: int) -> list[int]:
    return [int(n_max * (1 / imbalance) ** (i / (classes - 1))) for i in range(classes)]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 3, 0])


def test_log_prior_is_log_of_class_frequencies():
    torch.testing.assert_close(log_class_prior([3, 1]), torch.tensor([math.log(0.75), math.log(0.25)]))


@pytest.mark.parametrize(
    ("tau", "head", "tail"), [(1.0, 3.0770357, 7.6822059), (0.9, 3.1742031, 7.3188564)]
)
def test_zero_logit_values_on_cifar100_lt_if100(tau, head, tail):
    loss = LogitAdjustedLoss(cifar_lt_counts(500, 100, 100), tau=tau)
    per_sample = loss.per_sample(torch.zeros(2, 100), torch.tensor([0, 99]))
    torch.testing.assert_close(per_sample, torch.tensor([head, tail]), atol=2e-6, rtol=0)


def test_loss_is_cross_entropy_of_prior_shifted_logits():
    logits, target = _batch()
    adjusted = logits + 0.5 * log_class_prior(COUNTS)
    torch.testing.assert_close(LogitAdjustedLoss(COUNTS, tau=0.5)(logits, target), F.cross_entropy(adjusted, target))


def test_balanced_softmax_equals_logit_adjustment_with_tau_one():
    logits, target = _batch()
    expected = LogitAdjustedLoss(COUNTS, tau=1.0)(logits, target)
    torch.testing.assert_close(BalancedSoftmaxLoss(COUNTS)(logits, target), expected)


def test_uniform_prior_reduces_to_plain_cross_entropy():
    logits, target = _batch()
    uniform = LogitAdjustedLoss([7, 7, 7, 7], tau=1.0)
    torch.testing.assert_close(uniform(logits, target), F.cross_entropy(logits, target))


def test_tau_zero_is_plain_cross_entropy():
    logits, target = _batch()
    torch.testing.assert_close(LogitAdjustedLoss(COUNTS, tau=0.0)(logits, target), F.cross_entropy(logits, target))


def test_posthoc_adjustment_subtracts_tau_log_prior():
    logits, _ = _batch()
    torch.testing.assert_close(posthoc_logit_adjust(logits, COUNTS, tau=2.0), logits - 2.0 * log_class_prior(COUNTS))


def test_posthoc_adjustment_with_uniform_prior_keeps_the_argmax():
    logits, _ = _batch()
    adjusted = posthoc_logit_adjust(logits, [9, 9, 9, 9])
    assert torch.equal(adjusted.argmax(dim=1), logits.argmax(dim=1))
    torch.testing.assert_close(adjusted - logits, torch.full_like(logits, math.log(4)))


def test_posthoc_adjustment_favours_rare_classes_on_a_tie():
    assert posthoc_logit_adjust(torch.zeros(1, 4), COUNTS).argmax().item() == 3
