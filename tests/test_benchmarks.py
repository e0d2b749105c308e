"""The benchmark table (ltzoo.benchmarks) is the one description of each benchmark: the registry's pretrained cfgs,
the data code and training read it, the imbalance factor comes from the tag, and `ltzoo.data.benchmark_sets.eval_set`
is the eval set both `ltzoo validate` and the training loop measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import shared_file
from torchvision import transforms

from ltzoo import registry
from ltzoo.benchmarks import BENCHMARKS, get_benchmark, imb_factor_of
from ltzoo.data.benchmark_sets import eval_set, train_class_counts
from ltzoo.data.cifar import img_num_per_cls
from ltzoo.data.sources import load_cifar


def test_every_zoo_entry_is_on_a_benchmark_of_the_table():
    assert {registry.get_entry(name).dataset for name in registry.list_models()} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_a_pretrained_cfg_takes_classes_input_and_normalisation_from_its_benchmarks_row(name: str):
    entry = next(registry.get_entry(n) for n in registry.list_models() if registry.get_entry(n).dataset == name)
    row, cfg = BENCHMARKS[name], registry.get_pretrained_cfg(entry.name)
    assert (cfg["num_classes"], cfg["input_size"], cfg["mean"], cfg["std"], cfg["crop_pct"]) == (
        row.num_classes, row.input_size, row.mean, row.std, row.crop_pct)


@pytest.mark.parametrize("tag, factor", [("if100", 100.0), ("if50", 50.0), ("if10", 10.0), ("if100_e400", 100.0)])
def test_a_cifar_tag_names_the_imbalance_factor(tag: str, factor: float):
    assert imb_factor_of("cifar100_lt", tag) == factor


def test_a_large_scale_benchmark_has_no_imbalance_factor_of_its_own():
    assert imb_factor_of("imagenet_lt", "e100") is None


def test_a_cifar_tag_that_names_no_imbalance_factor_is_refused():
    with pytest.raises(ValueError, match="tag 'e100' names no imbalance factor; its tags start with one of if100"):
        imb_factor_of("cifar10_lt", "e100")


def test_an_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown benchmark 'cifar10'; expected one of cifar10_lt, cifar100_lt"):
        get_benchmark("cifar10")


def test_cifar_training_counts_follow_the_tags_exponential_profile():
    assert train_class_counts("cifar10_lt", 100.0).tolist() == img_num_per_cls(5000, 10, 100.0)


@pytest.fixture(scope="module")
def cifar10_test_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 root holding the real test archive (symlinked)."""
    archive = shared_file("cifar10_test_jpeg.npz")
    root = tmp_path_factory.mktemp("cifar10")
    (root / archive.name).symlink_to(archive)
    return root


def test_the_cifar_eval_set_is_the_test_images_in_file_order_normalised_with_the_cfgs_mean_and_std(
        cifar10_test_root: Path):
    cfg = registry.get_pretrained_cfg("resnet32_ce_cifar10_lt.if100")
    data = eval_set("cifar10_lt", "test", cfg, imb_factor=100.0, data_dir=cifar10_test_root, batch_size=512,
                    channels_last=False)
    batch = next(iter(data.loader))
    arrays = load_cifar("cifar10", train=False, root=cifar10_test_root)
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(cfg["mean"], cfg["std"])])
    expected = torch.stack([reference(image) for image in arrays.images[:512]])
    torch.testing.assert_close(batch.images, expected)
    assert torch.equal(batch.labels, torch.as_tensor(arrays.labels[:512]))
    assert np.array_equal(data.train_counts, img_num_per_cls(5000, 10, 100.0))
