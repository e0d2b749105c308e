"""SupCon (docs/methods/baselines.md §7): documented check values, masks, and the vectorised form against a slow
loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import SupConLoss

SQUARE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


@pytest.mark.parametrize(
    ("temperature", "labels", "expected"),
    [(1.0, [0, 0, 1, 1], 0.8619948), (1.0, [0, 0, 1, 2], 0.4309974), (0.5, [0, 0, 1, 1], 0.7586237)],
)
def test_spec_check_values_on_the_square(temperature, labels, expected):
    loss = SupConLoss(temperature=temperature, base_temperature=temperature)
    assert loss(SQUARE, torch.tensor(labels)).item() == pytest.approx(expected, abs=1e-6)


def test_square_closed_form_is_log_two_plus_inverse_e():
    assert SupConLoss(1.0, 1.0)(SQUARE, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(math.log(2 + math.exp(-1)))


def test_anchors_without_positives_contribute_zero():
    assert SupConLoss(1.0, 1.0)(SQUARE, torch.tensor([0, 1, 2, 3])).item() == 0.0


def test_anchors_without_positives_still_count_in_the_mean():
    loss = SupConLoss(1.0, 1.0)
    half_without_positives = loss(SQUARE, torch.tensor([0, 0, 1, 2]))
    torch.testing.assert_close(half_without_positives, loss(SQUARE, torch.tensor([0, 0, 1, 1])) / 2)


def test_a_float_mask_equal_to_the_label_mask_reproduces_the_label_loss():
    features = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    mask = (labels[:, None] == labels[None, :]).float()
    loss = SupConLoss()
    torch.testing.assert_close(loss(features, mask=mask), loss(features, labels))


def test_exactly_one_of_labels_or_mask_is_required():
    with pytest.raises(ValueError):
        SupConLoss()(SQUARE)


def _slow_supcon(z: torch.Tensor, mask: torch.Tensor, tau: float, base_tau: float) -> float:
    """docs/methods/baselines.md §7 written anchor by anchor."""
    m = z.shape[0]
    total = 0.0
    for a in range(m):
        others = [q for q in range(m) if q != a]
        log_den = math.log(sum(math.exp(float(z[a] @ z[q]) / tau) for q in others))
        weights = {p: float(mask[a, p]) for p in others}
        d = sum(weights.values())
        d = 1.0 if d < 1e-6 else d
        s = sum(w * (float(z[a] @ z[p]) / tau - log_den) for p, w in weights.items())
        total += -(tau / base_tau) * s / d
    return total / m


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_vectorised_equals_slow_loop_with_labels(tau):
    g = torch.Generator().manual_seed(1)
    z = F.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 0, 2])
    mask = (labels[:, None] == labels[None, :]).double()
    value = SupConLoss(tau, 0.07)(z, labels)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(_slow_supcon(z, mask, tau, 0.07), abs=1e-9)


def test_vectorised_equals_slow_loop_with_a_real_valued_mask():
    g = torch.Generator().manual_seed(2)
    z = F.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=1)
    mask = torch.rand(6, 6, generator=g, dtype=torch.float64)
    mask[0] = 0.0
    value = SupConLoss(0.2, 0.1)(z, mask=mask)
    assert value.item() == pytest.approx(_slow_supcon(z, mask, 0.2, 0.1), abs=1e-9)


def test_bf16_features_under_autocast_give_a_float32_loss():
    features = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(3)), dim=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = SupConLoss()(features.bfloat16(), labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, SupConLoss()(features.bfloat16().float(), labels))
