"""Focal loss (docs/methods/baselines.md §4.4): (1 − p)^γ · CE, batch mean, unweighted."""

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import FocalLoss


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 3, 0])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_focal_term_is_one_minus_true_class_probability_to_gamma_times_ce(gamma):
    logits, target = _batch()
    p_true = logits.softmax(dim=1).gather(1, target[:, None]).squeeze(1)
    expected = ((1 - p_true) ** gamma * -p_true.log()).mean()
    torch.testing.assert_close(FocalLoss(gamma)(logits, target), expected)


def test_gamma_zero_is_plain_cross_entropy():
    logits, target = _batch()
    torch.testing.assert_close(FocalLoss(0.0)(logits, target), F.cross_entropy(logits, target))


def test_focal_loss_refuses_a_class_weight():
    with pytest.raises(ValueError, match="unweighted"):
        FocalLoss().set_class_weight(torch.ones(4))
