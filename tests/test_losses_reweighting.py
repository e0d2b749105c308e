"""Class-balanced weights and DRW against the check table of docs/methods/baselines.md §4.1."""

import pytest
import torch

from ltzoo.losses import DeferredReweighting, class_balanced_weights


def cifar_lt_counts(n_max: int, classes: int, imbalance: int) -> list[int]:
    return [int(n_max * (1 / imbalance) ** (i / (classes - 1))) for i in range(classes)]


@pytest.mark.parametrize(
    ("n_max", "classes", "imbalance", "w_head", "w_tail", "ratio"),
    [
        (500, 100, 100, 0.0449, 4.3783, 97.57),
        (500, 100, 50, 0.0789, 3.8494, 48.79),
        (500, 100, 10, 0.2582, 2.5247, 9.78),
        (5000, 10, 100, 0.0506, 3.9927, 78.89),
        (5000, 10, 50, 0.0890, 3.5206, 39.54),
        (5000, 10, 10, 0.2923, 2.3585, 8.07),
    ],
)
def test_drw_weights_match_the_spec_table(n_max, classes, imbalance, w_head, w_tail, ratio):
    w = class_balanced_weights(cifar_lt_counts(n_max, classes, imbalance), beta=0.9999)
    assert w[0].item() == pytest.approx(w_head, abs=5e-5)
    assert w[-1].item() == pytest.approx(w_tail, abs=5e-5)
    assert (w[-1] / w[0]).item() == pytest.approx(ratio, abs=5e-3)


def test_weights_sum_to_the_number_of_classes():
    w = class_balanced_weights([500, 120, 30, 7], beta=0.999)
    assert w.sum().item() == pytest.approx(4.0, rel=1e-6)


def test_weights_follow_the_effective_number_formula():
    counts, beta = torch.tensor([40.0, 10.0, 2.0]), 0.9
    raw = (1 - beta) / (1 - beta**counts)
    torch.testing.assert_close(class_balanced_weights(counts, beta), (raw * 3 / raw.sum()).float())


def test_beta_zero_gives_all_ones():
    torch.testing.assert_close(class_balanced_weights([500, 50, 5], beta=0.0), torch.ones(3))


def test_beta_outside_the_unit_interval_is_rejected():
    with pytest.raises(ValueError):
        class_balanced_weights([10, 5], beta=1.0)


def test_drw_switches_exactly_at_the_start_epoch():
    drw = DeferredReweighting(cifar_lt_counts(500, 100, 100), start_epoch=160)
    assert drw.weights(0) is None
    assert drw.weights(159) is None
    torch.testing.assert_close(drw.weights(160), class_balanced_weights(cifar_lt_counts(500, 100, 100), 0.9999))
    torch.testing.assert_close(drw.weights(199), drw.weights(160))
