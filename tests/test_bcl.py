"""BCL: the balanced contrastive loss (bcl_concutmix §4 items 1-4) and the BCL training method (items 5, 12)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import BalancedContrastiveLoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# §4 item 1: B = 2, y = (0, 1); anchors [v1; v2]; prototypes p_0 = (1, 0), p_1 = (0, 1).
HAND_ANCHORS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
HAND_LABELS = torch.tensor([0, 1, 0, 1])
HAND_PROTOTYPES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def unit_rows(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1)


def test_hand_case_per_anchor_losses_at_temperature_one():
    e = math.e
    expected = torch.tensor([math.log(1 + e) - 1, math.log(1 + math.cosh(1)), math.log(1 + e) - 1,
                             1 + math.log(1 + 1 / e)])
    per_anchor = BalancedContrastiveLoss(1.0).per_anchor(HAND_ANCHORS, HAND_LABELS, HAND_PROTOTYPES)
    torch.testing.assert_close(per_anchor, expected)
    torch.testing.assert_close(per_anchor, torch.tensor([0.3132617, 0.9333762, 0.3132617, 1.3132617]))


@pytest.mark.parametrize(("temperature", "expected"), [(1.0, 0.7182903), (0.5, 0.9853732), (0.1, 4.8267700)])
def test_hand_case_values(temperature, expected):
    loss = BalancedContrastiveLoss(temperature)(HAND_ANCHORS, HAND_LABELS, HAND_PROTOTYPES)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def slow_bcl(anchors: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> list[float]:
    """§2.3 step 4 written anchor by anchor, member by member."""
    members = [(z, int(y)) for z, y in zip(anchors, labels)] + [(p, c) for c, p in enumerate(prototypes)]
    losses = []
    for a, (z_a, y_a) in enumerate(members[: len(anchors)]):
        contrast = [m for j, m in enumerate(members) if j != a]
        by_class: dict[int, list[float]] = {}
        for z_j, y_j in contrast:
            by_class.setdefault(y_j, []).append(float(z_a @ z_j) / temperature)
        log_d = math.log(sum(sum(math.exp(s) for s in sims) / len(sims) for sims in by_class.values()))
        positives = by_class[y_a]
        losses.append(-sum(s - log_d for s in positives) / len(positives))
    return losses


@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
def test_vectorised_loss_equals_the_slow_loop(temperature):
    # 2B = 8 anchors over 6 classes: classes 1 and 4 repeat, 0 and 5 are absent from the batch.
    labels = torch.tensor([1, 1, 2, 4, 1, 3, 4, 4])
    anchors, prototypes = unit_rows(8, 5, seed=0), unit_rows(6, 5, seed=1)
    per_anchor = BalancedContrastiveLoss(temperature).per_anchor(anchors, labels, prototypes)
    assert per_anchor.dtype == torch.float64
    expected = torch.tensor(slow_bcl(anchors, labels, prototypes, temperature), dtype=torch.float64)
    torch.testing.assert_close(per_anchor, expected, rtol=0, atol=1e-9)


def class_averaging_case() -> tuple[BalancedContrastiveLoss, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchor 0 of class 0; class 1 (a negative class for it) has two batch members, rows 1 and 2."""
    labels = torch.tensor([0, 1, 1, 2, 0])
    return BalancedContrastiveLoss(0.5), unit_rows(5, 3, seed=2), labels, unit_rows(3, 3, seed=3)


def test_duplicating_every_member_of_a_negative_class_leaves_the_anchor_loss_unchanged():
    loss, anchors, labels, prototypes = class_averaging_case()
    before = loss.per_anchor(anchors, labels, prototypes)[0]
    every_class_1_member = torch.cat([anchors[1:3], prototypes[1:2]])  # S_1(a): both views and the prototype p_1
    after = loss.per_anchor(torch.cat([anchors, every_class_1_member]), torch.cat([labels, torch.tensor([1, 1, 1])]),
                            prototypes)[0]
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)


def test_duplicating_one_member_of_a_negative_class_changes_the_anchor_loss():
    loss, anchors, labels, prototypes = class_averaging_case()
    before = loss.per_anchor(anchors, labels, prototypes)[0]
    after = loss.per_anchor(torch.cat([anchors, anchors[1:2]]), torch.cat([labels, torch.tensor([1])]), prototypes)[0]
    assert abs(float(after - before)) > 1e-3


def test_class_complement_puts_the_own_prototype_in_the_positives_and_every_class_in_the_denominator():
    """§4 item 4: all 2B = 4 anchors of class 0 at e_1, C = 3 prototypes p_0 = e_2, p_1 = −e_1, p_2 = −e_2."""
    temperature, m = 0.5, 4
    anchors = torch.tensor([[1.0, 0.0]] * m, dtype=torch.float64)
    prototypes = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    # P(a) = the 3 other anchors (s = 1/T) and p_0 (s = 0); D(a) has one averaged term per class 0, 1, 2.
    class_0 = ((m - 1) * math.exp(1 / temperature) + 1) / m
    log_d = math.log(class_0 + math.exp(-1 / temperature) + 1.0)
    expected = -((m - 1) / temperature / m - log_d)
    per_anchor = BalancedContrastiveLoss(temperature).per_anchor(anchors, torch.zeros(m, dtype=torch.long), prototypes)
    torch.testing.assert_close(per_anchor, torch.full((m,), expected, dtype=torch.float64))


def test_loss_is_float32_under_bf16_autocast():
    anchors = unit_rows(4, 3, seed=4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = BalancedContrastiveLoss(0.1)(anchors, torch.tensor([0, 1, 0, 1]), unit_rows(2, 3, seed=5).bfloat16())
    assert loss.dtype == torch.float32
