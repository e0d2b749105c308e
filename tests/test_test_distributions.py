"""Shifted test distributions (SADE's test-agnostic protocol): class counts, determinism, accuracy from indices."""

import numpy as np
import pytest
import torch
from fixtures import shared_file

from ltzoo.data.sources import load_cifar
from ltzoo.evaluation.test_distributions import (
    TEST_DISTRIBUTIONS,
    parse_test_dists,
    shifted_accuracies,
    shifted_class_counts,
    shifted_indices,
)


def formula_counts(name: str, per_class: int, num_classes: int) -> list[int]:
    """n_c = int(n · (1/IF)^(c/(C−1))) forward, the same reversed backward, n everywhere for uniform."""
    if name == "uniform":
        return [per_class] * num_classes
    factor = float(name.removeprefix("forward").removeprefix("backward"))
    counts = [int(per_class * (1 / factor) ** (c / (num_classes - 1))) for c in range(num_classes)]
    return counts if name.startswith("forward") else counts[::-1]


@pytest.fixture(scope="module")
def cifar10_test_labels():
    shared_file("cifar10_test_jpeg.npz")
    return load_cifar("cifar10", train=False, root=shared_file("cifar10_test_jpeg.npz").parent).labels


def test_there_are_five_forward_five_backward_and_the_uniform_distribution():
    assert TEST_DISTRIBUTIONS == ("forward50", "forward25", "forward10", "forward5", "forward2", "uniform",
                                  "backward2", "backward5", "backward10", "backward25", "backward50")


@pytest.mark.parametrize("name", TEST_DISTRIBUTIONS)
def test_each_shifted_cifar10_test_set_has_the_formulas_class_counts(cifar10_test_labels, name):
    kept = shifted_indices(cifar10_test_labels, name)
    assert np.bincount(cifar10_test_labels[kept], minlength=10).tolist() == formula_counts(name, 1000, 10)


def test_cifar10_forward50_and_backward50_keep_these_counts(cifar10_test_labels):
    forward = [1000, 647, 419, 271, 175, 113, 73, 47, 30, 20]
    labels = cifar10_test_labels
    kept = {name: labels[shifted_indices(labels, name)] for name in ("forward50", "backward50")}
    assert np.bincount(kept["forward50"]).tolist() == forward
    assert np.bincount(kept["backward50"]).tolist() == forward[::-1]


@pytest.mark.parametrize("name", TEST_DISTRIBUTIONS)
def test_each_shifted_cifar100_test_set_has_the_formulas_class_counts(name):
    labels = np.repeat(np.arange(100), 100)  # CIFAR-100's balanced test set: 100 images of each class
    kept = shifted_indices(labels, name)
    assert np.bincount(labels[kept], minlength=100).tolist() == formula_counts(name, 100, 100)
    assert shifted_class_counts(name, 100, 100).tolist() == formula_counts(name, 100, 100)


def test_cifar100_forward50_keeps_2486_images_from_100_down_to_2():
    counts = shifted_class_counts("forward50", 100, 100)
    assert (counts[0], counts[-1], counts.sum()) == (100, 2, 2486)


def test_a_shifted_set_is_the_same_on_every_call_and_has_no_repeated_image(cifar10_test_labels):
    first = shifted_indices(cifar10_test_labels, "backward10")
    assert np.array_equal(first, shifted_indices(cifar10_test_labels, "backward10"))
    assert len(np.unique(first)) == len(first) and np.all(np.diff(first) > 0)


def test_uniform_is_the_whole_test_set(cifar10_test_labels):
    assert np.array_equal(shifted_indices(cifar10_test_labels, "uniform"), np.arange(10_000))


def test_an_unbalanced_test_set_is_refused_with_the_class_that_differs():
    with pytest.raises(ValueError, match="class 1 has 2 images"):
        shifted_indices(np.array([0, 0, 0, 1, 1, 2, 2, 2]), "forward2")


def test_accuracy_on_a_shifted_set_is_top1_on_its_kept_images():
    labels = torch.arange(4).repeat_interleave(10)
    predictions = labels.clone()
    predictions[labels == 3] = 0  # class 3 always wrong, the others always right
    logits = torch.nn.functional.one_hot(predictions, 4).float()
    accuracy = shifted_accuracies(logits, labels, ["uniform", "forward10", "backward10"])
    assert accuracy["uniform"] == 75.0
    kept_forward = shifted_class_counts("forward10", 10, 4)  # [10, 4, 2, 1]: one image of class 3
    assert accuracy["forward10"] == pytest.approx(100 * (1 - kept_forward[3] / kept_forward.sum()))
    assert accuracy["backward10"] == pytest.approx(100 * (1 - 10 / kept_forward.sum()))


def test_all_names_every_distribution_and_a_comma_list_keeps_plot_order():
    assert parse_test_dists("all") == list(TEST_DISTRIBUTIONS)
    assert parse_test_dists("uniform, backward50,forward2") == ["forward2", "uniform", "backward50"]


def test_an_unknown_distribution_lists_the_valid_names():
    with pytest.raises(ValueError, match="backward100.*forward50"):
        parse_test_dists("backward100")


def test_the_validate_command_names_the_valid_distributions_for_an_unknown_one(capsys):
    from ltzoo_cli import main

    assert main(["validate", "resnet32_ce_cifar10_lt", "--test-dist", "sideways"]) == 2
    assert "unknown test distribution sideways; use 'all' or a comma list of forward50" in capsys.readouterr().err
