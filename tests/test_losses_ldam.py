"""LDAM margins (docs/methods/baselines.md §4.2) and the loss against F.cross_entropy on hand-shifted logits."""

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import DeferredReweighting, LDAMLoss, ldam_margins


def cifar_lt_counts(n_max: int, classes: int, imbalance: int) -> list[int]:
    return [int(n_max * (1 / imbalance) ** (i / (classes - 1))) for i in range(classes)]


@pytest.mark.parametrize(("imbalance", "m_head"), [(100, 0.1581), (50, 0.1880), (10, 0.2812)])
@pytest.mark.parametrize(("n_max", "classes"), [(500, 100), (5000, 10)])
def test_margins_match_the_spec_head_and_tail(n_max, classes, imbalance, m_head):
    margins = ldam_margins(cifar_lt_counts(n_max, classes, imbalance))
    assert margins[0].item() == pytest.approx(m_head, abs=5e-5)
    assert margins[-1].item() == pytest.approx(0.5)


def test_margins_scale_as_count_to_the_minus_quarter():
    margins = ldam_margins([256, 16, 1], max_margin=1.0)
    torch.testing.assert_close(margins, torch.tensor([0.25, 0.5, 1.0]))


def _cosine_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 3, generator=g, dtype=torch.float64) * 2 - 1, torch.tensor([0, 1, 2, 2, 1])


def test_ldam_is_cross_entropy_of_scaled_logits_with_the_true_class_margin_subtracted():
    counts = [100, 30, 4]
    cosine, target = _cosine_batch()
    margins = ldam_margins(counts, 0.5).double()
    shifted = cosine.clone()
    for i, y in enumerate(target.tolist()):
        shifted[i, y] -= margins[y]
    expected = F.cross_entropy(30.0 * shifted, target)
    torch.testing.assert_close(LDAMLoss(counts)(30.0 * cosine, target), expected)


def test_ldam_with_drw_weights_is_weighted_cross_entropy_on_the_shifted_logits():
    counts = [100, 30, 4]
    cosine, target = _cosine_batch()
    weight = DeferredReweighting(counts, start_epoch=0).weights(0)
    loss = LDAMLoss(counts, max_margin=0.5, scale=30.0)
    loss.set_class_weight(weight)
    shifted = cosine - F.one_hot(target, 3).double() * ldam_margins(counts).double()[target, None]
    expected = F.cross_entropy(30.0 * shifted, target, weight=weight.double())
    torch.testing.assert_close(loss(30.0 * cosine, target), expected)
