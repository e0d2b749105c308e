"""Samplers: class probabilities per kind, their empirical frequencies, determinism per (seed, epoch), rank shards."""

import numpy as np
import pytest
import torch

from ltzoo.data.cifar import img_num_per_cls
from ltzoo.data.samplers import (
    SAMPLER_KINDS,
    ClassAwareSampler,
    InstanceSampler,
    ShardedSampler,
    check_sampler_kind,
    class_probabilities,
)
from ltzoo.data.shots import shot_groups

CIFAR10_LT = np.array(img_num_per_cls(5000, 10, 100))
CIFAR100_LT = np.array(img_num_per_cls(500, 100, 100))


def _labels(counts: np.ndarray) -> np.ndarray:
    """A label array with counts[k] images of class k."""
    return np.repeat(np.arange(len(counts)), counts)


def _few_share(probabilities: np.ndarray, counts: np.ndarray) -> float:
    """Probability mass on the few-shot classes."""
    return float(probabilities[shot_groups(counts)["few"]].sum())


def _empirical(sampler: ClassAwareSampler, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class frequencies of one epoch of the sampler's draws."""
    return np.bincount(labels[list(sampler)], minlength=num_classes) / len(sampler)


def test_class_probabilities_of_each_kind():
    counts = [1, 4, 16]
    np.testing.assert_allclose(class_probabilities(counts, "instance"), np.array([1, 4, 16]) / 21)
    np.testing.assert_allclose(class_probabilities(counts, "class_balanced"), [1 / 3] * 3)
    np.testing.assert_allclose(class_probabilities(counts, "sqrt"), np.array([1, 2, 4]) / 7)
    np.testing.assert_allclose(class_probabilities(counts, "reversed"), np.array([16, 4, 1]) / 21)
    np.testing.assert_allclose(class_probabilities(counts, "effective_number", beta=0.0), [1 / 3] * 3)


def test_effective_number_equals_drw_weights_over_c():
    beta = 0.9999
    for counts in (CIFAR10_LT, CIFAR100_LT):
        drw = (1 - beta) / (1 - beta ** counts.astype(np.float64))
        drw = drw * len(counts) / drw.sum()
        np.testing.assert_allclose(class_probabilities(counts, "effective_number", beta), drw / len(counts))


def test_effective_number_tail_to_head_ratios_match_the_spec():
    for counts, ratio in ((CIFAR100_LT, 97.57), (CIFAR10_LT, 78.89)):
        probabilities = class_probabilities(counts, "effective_number")
        assert probabilities[-1] / probabilities[0] == pytest.approx(ratio, abs=0.005)


@pytest.mark.parametrize("kind, share", [("effective_number", 0.767), ("class_balanced", 0.30), ("instance", 0.028)])
def test_few_shot_share_on_cifar100_lt_if100(kind, share):
    assert _few_share(class_probabilities(CIFAR100_LT, kind), CIFAR100_LT) == pytest.approx(share, abs=5e-4)


@pytest.mark.parametrize("retired, kind", [("cmo_uniform", "class_balanced"), ("class_uniform", "class_balanced"),
                                            ("balance", "class_balanced"), ("effnum", "effective_number"),
                                            ("reverse", "reversed")])
def test_a_retired_sampler_name_is_an_error_naming_its_kind(retired, kind):
    with pytest.raises(ValueError, match=f"sampler kind '{retired}' is now called '{kind}'"):
        class_probabilities(CIFAR10_LT, retired)


def test_an_unknown_sampler_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="choose one of instance, class_balanced, sqrt, reversed, effective_number"):
        ClassAwareSampler(np.array([0, 1]), kind="uniform")


def test_a_method_subset_of_kinds_names_its_option():
    with pytest.raises(ValueError, match="unknown patch_sampler 'sqrt'; choose one of class_balanced, reversed"):
        check_sampler_kind("sqrt", "patch_sampler", ("class_balanced", "reversed"))


def test_an_empty_class_is_never_drawn():
    assert class_probabilities([0, 3, 5], "reversed")[0] == 0
    assert class_probabilities([0, 3, 5], "class_balanced").tolist() == [0.0, 0.5, 0.5]


def test_an_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match=", ".join(SAMPLER_KINDS)):
        class_probabilities(CIFAR10_LT, "balanced")


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_100k_draws_follow_the_class_probabilities_on_cifar10_lt(kind):
    labels = _labels(CIFAR10_LT)
    sampler = ClassAwareSampler(labels, kind=kind, num_samples=100_000)
    empirical = _empirical(sampler, labels, 10)
    assert np.abs(empirical - class_probabilities(CIFAR10_LT, kind)).max() < 0.01


def test_100k_effective_number_draws_on_cifar100_lt_are_three_quarters_few_shot():
    labels = _labels(CIFAR100_LT)
    sampler = ClassAwareSampler(labels, kind="effective_number", num_samples=100_000, seed=3)
    empirical = _empirical(sampler, labels, 100)
    assert np.abs(empirical - class_probabilities(CIFAR100_LT, "effective_number")).max() < 0.01
    assert _few_share(empirical, CIFAR100_LT) == pytest.approx(0.767, abs=0.01)


def test_images_within_a_class_are_drawn_uniformly():
    labels = np.array([0] * 4 + [1])
    draws = np.array(list(ClassAwareSampler(labels, num_samples=40_000)))
    within = np.bincount(draws[draws < 4], minlength=4) / (draws < 4).sum()
    assert np.abs(within - 0.25).max() < 0.01


def test_one_epoch_is_one_draw_per_image_by_default():
    assert len(ClassAwareSampler(_labels(CIFAR10_LT))) == CIFAR10_LT.sum()


@pytest.mark.parametrize("make", [lambda seed: ClassAwareSampler(_labels(CIFAR10_LT), seed=seed),
                                  lambda seed: InstanceSampler(1000, seed=seed)])
def test_order_is_fixed_by_seed_and_epoch(make):
    first, again, other_seed = make(0), make(0), make(1)
    for sampler in (first, again, other_seed):
        sampler.set_epoch(7)
    assert list(first) == list(again)
    assert list(first) == list(first)
    assert list(first) != list(other_seed)
    again.set_epoch(8)
    assert list(first) != list(again)


def test_instance_sampler_is_a_permutation_per_epoch():
    sampler = InstanceSampler(1000, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(1000)) and order != list(range(1000))
    assert list(InstanceSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_samplers_work_inside_a_plain_dataloader():
    labels = _labels(CIFAR10_LT)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(labels))
    sampler = ClassAwareSampler(labels, seed=5)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=128)
    drawn = torch.cat([batch for (batch,) in loader]).numpy()
    np.testing.assert_array_equal(drawn, labels[list(sampler)])


def test_sharded_sampler_splits_one_epoch_order_over_ranks_padding_by_repetition():
    sampler = ClassAwareSampler(_labels(CIFAR10_LT), num_samples=10, seed=3)
    shards = [list(ShardedSampler(sampler, rank, 4)) for rank in range(4)]
    order = list(sampler)
    assert [len(shard) for shard in shards] == [3, 3, 3, 3]  # ⌈10 / 4⌉ each
    assert [shards[r][k] for k in range(3) for r in range(4)] == (order + order[:2])


def test_sharded_sampler_follows_its_samplers_epoch():
    sampler = ClassAwareSampler(_labels(CIFAR10_LT), seed=3)
    shard = ShardedSampler(sampler, 1, 2)
    shard.set_epoch(5)
    assert list(shard) == list(sampler)[1::2]


def test_bad_sampler_arguments_are_rejected():
    with pytest.raises(ValueError, match="non-negative integer class ids"):
        ClassAwareSampler(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        InstanceSampler(10, seed=-1)
    with pytest.raises(ValueError, match="beta must lie in"):
        class_probabilities([1, 2], "effective_number", beta=1.0)
