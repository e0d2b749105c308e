"""CrossEntropyLoss (hard labels) and SoftTargetCrossEntropy (soft labels, optional logit adjustment)."""

import math

import torch
import torch.nn.functional as F

from ltzoo.losses import CrossEntropyLoss, LogitAdjustedLoss, SoftTargetCrossEntropy

COUNTS = [50, 20, 5]


def test_hard_label_per_sample_loss_is_minus_log_softmax_of_the_label():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 2])
    expected = torch.tensor([-math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1))), math.log(3)])
    torch.testing.assert_close(CrossEntropyLoss().per_sample(logits, target), expected)


def test_one_hot_soft_target_equals_hard_label_cross_entropy():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 2, 0])
    soft = F.one_hot(target, 3).float()
    torch.testing.assert_close(SoftTargetCrossEntropy()(logits, soft), F.cross_entropy(logits, target))


def test_soft_target_is_linear_in_the_target():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    a, b, lam = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 0, 1]), 0.3
    soft = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()
    two_term = lam * F.cross_entropy(logits, a) + (1 - lam) * F.cross_entropy(logits, b)
    torch.testing.assert_close(SoftTargetCrossEntropy()(logits, soft), two_term)


def test_with_counts_it_equals_the_two_term_logit_adjusted_loss():
    """docs/methods/concutmix.md §4 item 6: λ·LA-CE(s, a) + (1 − λ)·LA-CE(s, b) equals the soft-target LA-CE."""
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    a, b, lam, tau = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 0, 1]), 0.6, 0.9
    soft = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()
    la = LogitAdjustedLoss(COUNTS, tau=tau)
    expected = lam * la(logits, a) + (1 - lam) * la(logits, b)
    torch.testing.assert_close(SoftTargetCrossEntropy(COUNTS, tau=tau)(logits, soft), expected, atol=1e-6, rtol=0)


def test_soft_target_stays_finite_where_a_probability_underflows():
    logits = torch.tensor([[0.0, -200.0, 200.0]])
    soft = torch.tensor([[0.5, 0.0, 0.5]])
    value = SoftTargetCrossEntropy()(logits, soft)
    torch.testing.assert_close(value, torch.tensor(100.0))


def test_soft_target_runs_in_float32_under_bf16_autocast():
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(3)).bfloat16()
    soft = torch.full((3, 3), 1 / 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = SoftTargetCrossEntropy(COUNTS)(logits, soft)
    assert value.dtype == torch.float32
