"""DSCLLoss and PBSDLoss (docs/methods/dscl.md §2.3 steps 5–6): the documented hand cases (§6.1, §6.4), a slow loop in
float64 (§6.2), the special cases β = 0 and SupCon (§6.3), and the teacher's lack of gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import DSCLLoss, PBSDLoss, SupConLoss

E = math.e
UNIT = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
QUEUE = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])
LABELS = torch.tensor([0, 1])


@pytest.mark.parametrize(("temperature", "expected"), [(1.0, 2.5837953), (0.5, 3.9092511), (0.1, 17.7779140)])
def test_dscl_hand_case(temperature: float, expected: float):
    per_anchor = DSCLLoss(temperature, beta=8.0).per_anchor(UNIT, UNIT, LABELS, QUEUE, torch.tensor([0, 1]))
    torch.testing.assert_close(per_anchor, torch.full((2,), expected), rtol=1e-6, atol=0)


def test_dscl_hand_case_at_t1_is_the_closed_form():
    loss = DSCLLoss(1.0, beta=8.0)(UNIT, UNIT, LABELS, QUEUE, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(math.log(3 + E + 1 / E) + 7 / 9, rel=1e-6)


@pytest.mark.parametrize(("queue_labels", "expected"), [((1, 0), 1.6949064), ((2, 2), 0.8060175)])
def test_dscl_hand_case_with_other_queue_labels(queue_labels: tuple[int, int], expected: float):
    loss = DSCLLoss(1.0, beta=8.0)(UNIT, UNIT, LABELS, QUEUE, torch.tensor(queue_labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def dscl_loop(q, k, labels, memory, memory_labels, temperature, beta):
    """L_DSCL from the set definitions of §2.3 step 5, one anchor and one contrast item at a time."""
    batch = q.shape[0]
    total = 0.0
    for i in range(batch):
        contrast = [(q[j], labels[j], "query") for j in range(batch) if j != i]
        contrast += [(k[j], labels[j], "own key" if j == i else "key") for j in range(batch)]
        contrast += [(memory[r], memory_labels[r], "memory") for r in range(memory.shape[0])]
        log_z = torch.logsumexp(torch.stack([q[i] @ z / temperature for z, _, _ in contrast]), dim=0)
        log_p = [(q[i] @ z / temperature - log_z, label, kind) for z, label, kind in contrast]
        log_p_key = next(lp for lp, _, kind in log_p if kind == "own key")
        positives = [lp for lp, label, kind in log_p if label == labels[i] and kind != "own key"]
        if positives:
            alpha = 1 / (1 + (len(positives) if beta is None else beta))
            total = total - (alpha * log_p_key + (1 - alpha) / len(positives) * sum(positives))
        else:
            total = total - log_p_key
    return total / batch


def random_case(seed: int):
    """Repeated batch labels, a label (5) only in the queue, and anchors without positives (labels 3 and 4)."""
    generator = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(7, 6, generator=generator, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(7, 6, generator=generator, dtype=torch.float64), dim=1)
    memory = F.normalize(torch.randn(5, 6, generator=generator, dtype=torch.float64), dim=1)
    return q, k, torch.tensor([0, 0, 1, 1, 0, 3, 4]), memory, torch.tensor([0, 5, 1, 5, 0])


@pytest.mark.parametrize("beta", [8.0, 0.0, None])
def test_dscl_vectorised_equals_the_loop_in_float64(beta: float | None):
    q, k, labels, memory, memory_labels = random_case(0)
    fast = DSCLLoss(0.3, beta)(q, k, labels, memory, memory_labels)
    slow = dscl_loop(q, k, labels, memory, memory_labels, 0.3, beta)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-12)


def test_dscl_without_a_memory_contrasts_the_batch_only():
    q, k, labels, _, _ = random_case(1)
    fast = DSCLLoss(0.3, 8.0)(q, k, labels)
    slow = dscl_loop(q, k, labels, q.new_zeros(0, 6), torch.zeros(0, dtype=torch.long), 0.3, 8.0)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-12)


def test_dscl_beta_zero_is_infonce_on_the_own_key():
    q, k, labels, memory, memory_labels = random_case(2)
    temperature = 0.3
    contrast = torch.cat([q, k, memory])
    logits = q @ contrast.T / temperature
    logits.fill_diagonal_(float("-inf"))  # the anchor itself
    own_key = torch.arange(7) + 7
    expected = -(logits[torch.arange(7), own_key] - logits.logsumexp(dim=1)).mean()
    torch.testing.assert_close(DSCLLoss(temperature, beta=0.0)(q, k, labels, memory, memory_labels), expected)


def supcon_on_the_same_contrast_set(q, k, labels, memory, memory_labels, temperature):
    """SupCon over [q; k; memory] with only the queries as anchors (other rows have no positives, so contribute 0
    to SupCon's mean over all rows): rescaled to the mean over the queries."""
    features = torch.cat([q, k, memory])
    all_labels = torch.cat([labels, labels, memory_labels])
    mask = (labels[:, None] == all_labels[None, :]).to(q.dtype)
    mask = torch.cat([mask, mask.new_zeros(features.shape[0] - q.shape[0], features.shape[0])])
    loss = SupConLoss(temperature, base_temperature=temperature)(features, mask=mask)
    return loss * features.shape[0] / q.shape[0]


def test_dscl_with_beta_equal_to_every_anchors_n_is_supcon():
    generator = torch.Generator().manual_seed(3)
    q, k = (F.normalize(torch.randn(4, 5, generator=generator, dtype=torch.float64), dim=1) for _ in range(2))
    memory = F.normalize(torch.randn(2, 5, generator=generator, dtype=torch.float64), dim=1)
    labels, memory_labels = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1])  # n_i = 1 query + 1 key + 1 memory
    expected = supcon_on_the_same_contrast_set(q, k, labels, memory, memory_labels, 0.2)
    torch.testing.assert_close(DSCLLoss(0.2, beta=3.0)(q, k, labels, memory, memory_labels), expected)


def test_dscl_beta_none_is_supcon_when_anchors_have_different_n():
    q, k, labels, memory, memory_labels = random_case(4)
    expected = supcon_on_the_same_contrast_set(q, k, labels, memory, memory_labels, 0.3)
    torch.testing.assert_close(DSCLLoss(0.3, beta=None)(q, k, labels, memory, memory_labels), expected)


def test_dscl_gradient_reaches_queries_only():
    q, k, labels, memory, memory_labels = random_case(5)
    q, k, memory = q.clone().requires_grad_(), k.clone().requires_grad_(), memory.clone().requires_grad_()
    DSCLLoss(0.3, 8.0)(q, k, labels, memory, memory_labels).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and memory.grad is None


def test_dscl_runs_in_float32_under_bf16_inputs():
    q, k, labels, memory, memory_labels = random_case(6)
    loss = DSCLLoss(0.07, 8.0)(q.bfloat16(), k.bfloat16(), labels, memory.bfloat16(), memory_labels)
    assert loss.dtype == torch.float32


KEY = torch.tensor([[1.0, 0.0]])
TEACHER = torch.tensor([[[1.0, 0.0]]])
STUDENT = torch.tensor([[[0.0, 1.0]]])


@pytest.mark.parametrize(("temperature", "expected", "expected_self"),
                         [(1.0, 1.1067233, 0.8323956), (0.5, 0.9932445, 0.4410574)])
def test_pbsd_hand_case(temperature: float, expected: float, expected_self: float):
    pbsd = PBSDLoss(temperature)
    assert pbsd(STUDENT, TEACHER, KEY, QUEUE).item() == pytest.approx(expected, rel=1e-6)
    assert pbsd(TEACHER, TEACHER, KEY, QUEUE).item() == pytest.approx(expected_self, rel=1e-6)  # teacher's entropy


def test_pbsd_hand_case_at_t1_is_the_closed_form():
    assert PBSDLoss(1.0)(STUDENT, TEACHER, KEY, QUEUE).item() == pytest.approx(
        math.log(2 + 1 / E) + 1 / (1 + E + 1 / E), rel=1e-6)


def pbsd_case(seed: int):
    generator = torch.Generator().manual_seed(seed)
    students, teachers, keys, memory = (torch.randn(*shape, generator=generator, dtype=torch.float64)
                                        for shape in ((3, 5, 4), (3, 5, 4), (3, 4), (6, 4)))
    return tuple(F.normalize(x, dim=-1) for x in (students, teachers, keys, memory))


def test_pbsd_is_a_mean_over_images_and_patches_of_the_soft_cross_entropy():
    students, teachers, keys, memory = pbsd_case(7)
    total = 0.0
    for i in range(3):
        bank = torch.cat([keys[i:i + 1], memory])
        for j in range(5):
            target = torch.softmax(bank @ teachers[i, j] / 0.2, dim=0)
            total = total - (target * torch.log_softmax(bank @ students[i, j] / 0.2, dim=0)).sum()
    torch.testing.assert_close(PBSDLoss(0.2)(students, teachers, keys, memory), total / 15)


def test_pbsd_does_not_depend_on_the_memory_order():
    students, teachers, keys, memory = pbsd_case(8)
    permuted = memory[torch.randperm(memory.shape[0], generator=torch.Generator().manual_seed(0))]
    torch.testing.assert_close(PBSDLoss(0.2)(students, teachers, keys, permuted),
                               PBSDLoss(0.2)(students, teachers, keys, memory))


def test_pbsd_with_an_empty_memory_is_zero():
    students, teachers, keys, _ = pbsd_case(9)
    assert PBSDLoss(0.2)(students, teachers, keys, keys.new_zeros(0, 4)).item() == 0.0


def test_pbsd_teacher_gets_no_gradient():
    students, teachers, keys, memory = pbsd_case(10)
    students, teachers = students.clone().requires_grad_(), teachers.clone().requires_grad_()
    PBSDLoss(0.2)(students, teachers, keys, memory).backward()
    assert teachers.grad is None
    assert students.grad is not None and students.grad.abs().sum() > 0
