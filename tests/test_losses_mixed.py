"""Two-label mixed loss (docs/methods/baselines.md §4.1 / §6.5): each term normalised by its own label's weight sum."""

import torch
import torch.nn.functional as F

from ltzoo.losses import CrossEntropyLoss, mixed_label_loss

WEIGHT = torch.tensor([0.2, 1.0, 3.0])


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    return logits, torch.tensor([0, 0, 1, 2, 0]), torch.tensor([2, 1, 2, 2, 1])


def test_scalar_lambda_is_cmo_form_with_weighted_means_per_term():
    logits, a, b = _batch()
    loss = CrossEntropyLoss()
    loss.set_class_weight(WEIGHT)
    expected = 0.3 * F.cross_entropy(logits, a, weight=WEIGHT) + 0.7 * F.cross_entropy(logits, b, weight=WEIGHT)
    torch.testing.assert_close(mixed_label_loss(loss, logits, a, b, 0.3), expected)


def test_equal_per_sample_lambda_reproduces_the_scalar_form():
    logits, a, b = _batch()
    loss = CrossEntropyLoss()
    loss.set_class_weight(WEIGHT)
    torch.testing.assert_close(
        mixed_label_loss(loss, logits, a, b, torch.full((5,), 0.3)), mixed_label_loss(loss, logits, a, b, 0.3)
    )


def test_per_sample_lambda_weighted_uses_each_labels_own_weight_sum():
    logits, a, b = _batch()
    lam = torch.tensor([0.1, 0.9, 0.5, 0.3, 1.0])
    loss = CrossEntropyLoss()
    loss.set_class_weight(WEIGHT)
    ce_a = F.cross_entropy(logits, a, reduction="none")
    ce_b = F.cross_entropy(logits, b, reduction="none")
    expected = (lam * WEIGHT[a] * ce_a).sum() / WEIGHT[a].sum() + ((1 - lam) * WEIGHT[b] * ce_b).sum() / WEIGHT[b].sum()
    torch.testing.assert_close(mixed_label_loss(loss, logits, a, b, lam), expected)


def test_per_sample_lambda_without_weights_is_the_mean_of_mixed_terms():
    logits, a, b = _batch()
    lam = torch.tensor([0.1, 0.9, 0.5, 0.3, 1.0])
    ce_a = F.cross_entropy(logits, a, reduction="none")
    ce_b = F.cross_entropy(logits, b, reduction="none")
    expected = (lam * ce_a + (1 - lam) * ce_b).mean()
    torch.testing.assert_close(mixed_label_loss(CrossEntropyLoss(), logits, a, b, lam), expected)


def test_identical_labels_give_the_single_label_loss():
    logits, a, _ = _batch()
    loss = CrossEntropyLoss()
    loss.set_class_weight(WEIGHT)
    lam = torch.tensor([0.1, 0.9, 0.5, 0.3, 1.0])
    torch.testing.assert_close(mixed_label_loss(loss, logits, a, a, lam), loss(logits, a))


def test_a_second_label_weight_that_does_not_complement_the_first_weighs_its_term():
    """LSM's unnormalised saliency shares: λ^a + λ^b need not be 1; each term keeps its own weight sum."""
    logits, a, b = _batch()
    lam_a, lam_b = torch.tensor([0.7, 0.2, 0.5, 0.3, 1.0]), torch.tensor([0.5, 0.9, 0.1, 0.3, 0.0])
    loss = CrossEntropyLoss()
    loss.set_class_weight(WEIGHT)
    ce_a = F.cross_entropy(logits, a, reduction="none")
    ce_b = F.cross_entropy(logits, b, reduction="none")
    expected = (lam_a * WEIGHT[a] * ce_a).sum() / WEIGHT[a].sum() + (lam_b * WEIGHT[b] * ce_b).sum() / WEIGHT[b].sum()
    torch.testing.assert_close(mixed_label_loss(loss, logits, a, b, lam_a, lam_b), expected)
