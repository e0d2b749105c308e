"""ClassificationLoss: the class-weighted mean of docs/methods/baselines.md §4.1, sample scales and float32 compute."""

import pytest
import torch
import torch.nn.functional as F

from ltzoo.losses import ClassificationLoss, CrossEntropyLoss, as_class_counts


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 1, 2, 3, 3])


def test_without_class_weight_the_loss_is_the_batch_mean():
    logits, target = _batch()
    expected = F.cross_entropy(logits, target, reduction="none").mean()
    torch.testing.assert_close(CrossEntropyLoss()(logits, target), expected)


def test_class_weight_divides_by_the_batch_weight_sum_not_by_batch_size():
    logits, target = _batch()
    weight = torch.tensor([0.5, 2.0, 1.0, 4.0])
    loss = CrossEntropyLoss()
    loss.set_class_weight(weight)
    per_sample = F.cross_entropy(logits, target, reduction="none")
    by_hand = (weight[target] * per_sample).sum() / weight[target].sum()
    torch.testing.assert_close(loss(logits, target), by_hand)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target, weight=weight))


def test_clearing_the_class_weight_restores_the_plain_mean():
    logits, target = _batch()
    loss = CrossEntropyLoss()
    loss.set_class_weight(torch.tensor([0.5, 2.0, 1.0, 4.0]))
    loss.set_class_weight(None)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target))


def test_sample_scale_multiplies_each_term_but_not_the_normaliser():
    logits, target = _batch()
    weight = torch.tensor([0.5, 2.0, 1.0, 4.0])
    scale = torch.tensor([1.0, 0.0, 0.5, 0.25, 1.0, 0.75])
    loss = CrossEntropyLoss()
    loss.set_class_weight(weight)
    per_sample = F.cross_entropy(logits, target, reduction="none")
    expected = (scale * weight[target] * per_sample).sum() / weight[target].sum()
    torch.testing.assert_close(loss(logits, target, sample_scale=scale), expected)


def test_scalar_sample_scale_scales_the_whole_loss():
    logits, target = _batch()
    loss = CrossEntropyLoss()
    torch.testing.assert_close(loss(logits, target, sample_scale=0.3), 0.3 * loss(logits, target))


def test_bf16_logits_under_autocast_give_a_float32_loss_equal_to_the_float32_value():
    logits, target = _batch()
    logits_bf16 = logits.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = CrossEntropyLoss()(logits_bf16, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, F.cross_entropy(logits_bf16.float(), target))


def test_class_weight_is_not_saved_in_the_state_dict():
    loss = CrossEntropyLoss()
    loss.set_class_weight(torch.ones(4))
    assert "class_weight" not in loss.state_dict()


def test_base_class_has_no_per_sample_loss():
    logits, target = _batch()
    with pytest.raises(NotImplementedError):
        ClassificationLoss()(logits, target)


@pytest.mark.parametrize("counts", [[5, 0, 3], [[1, 2]], []])
def test_class_counts_must_be_positive_and_one_dimensional(counts):
    with pytest.raises(ValueError):
        as_class_counts(counts)
