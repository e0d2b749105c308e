"""CIFAR-10-LT / CIFAR-100-LT: per-class counts, the reference's index selection, and the built splits
(docs/methods/baselines.md §1.1)."""

import numpy as np
import pytest
import torch
from fixtures import make_cifar100_root, shared_file
from torchvision import transforms

from ltzoo.data import sources
from ltzoo.data.cifar import CifarDataset, cifar_lt, img_num_per_cls, long_tailed_indices

COUNT_TABLE = [
    # n_max, C, IF, train size, first counts, last counts
    (500, 100, 100, 10847, [500, 477, 455], [5]),
    (500, 100, 50, 12608, [500, 480, 462], [10]),
    (500, 100, 10, 19573, [500, 488, 477], [50]),
    (5000, 10, 100, 12406, [5000, 2997, 1796, 1077], [139, 83, 50]),
    (5000, 10, 50, 13996, [5000, 3237, 2096, 1357], [238, 154, 100]),
    (5000, 10, 10, 20431, [5000, 3871, 2997, 2320], [834, 645, 500]),
]
KEPT_INDEX_SUMS = {100: 309_748_569, 50: 349_804_152, 10: 512_503_043}
CIFAR10_LT_IF100_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def _canonical_cifar10_train_labels() -> np.ndarray:
    """The 50,000 CIFAR-10 training labels in canonical order (the shared archive's ``y``)."""
    with np.load(shared_file("cifar10_train_jpeg.npz")) as archive:
        return archive["y"]


@pytest.mark.parametrize("n_max, num_classes, imb_factor, size, first, last", COUNT_TABLE)
def test_per_class_counts_match_the_spec_table(n_max, num_classes, imb_factor, size, first, last):
    counts = img_num_per_cls(n_max, num_classes, imb_factor)
    assert sum(counts) == size
    assert counts[: len(first)] == first and counts[-len(last):] == last
    assert counts == sorted(counts, reverse=True)


def test_a_non_positive_imbalance_factor_is_rejected():
    with pytest.raises(ValueError, match="imb_factor must be positive"):
        img_num_per_cls(500, 100, 0)


@pytest.mark.parametrize("imb_factor", [100, 50, 10])
def test_selection_reproduces_the_reference_kept_indices(imb_factor):
    labels = _canonical_cifar10_train_labels()
    kept = long_tailed_indices(labels, 10, imb_factor, seed=0)
    assert int(kept.sum()) == KEPT_INDEX_SUMS[imb_factor]
    assert kept[labels[kept] == 0][:5].tolist() == [4030, 38518, 48266, 45556, 6312]
    assert kept[labels[kept] == 9][:5].tolist() == [22220, 38393, 22240, 25393, 19625]


def test_selection_keeps_classes_in_order_with_the_spec_counts():
    labels = _canonical_cifar10_train_labels()
    kept = long_tailed_indices(labels, 10, 100)
    assert np.all(np.diff(labels[kept]) >= 0)
    np.testing.assert_array_equal(np.bincount(labels[kept]), CIFAR10_LT_IF100_COUNTS)


def test_selection_from_a_class_with_too_few_images_is_an_error():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(ValueError, match="class 2 has 1 images"):
        long_tailed_indices(labels, 3, 1.0)


def test_cifar10_lt_train_is_the_selected_subset():
    shared_file("cifar10_train_jpeg.npz")
    data = cifar_lt("cifar10", "train", imb_factor=100)
    assert len(data) == 12406 and data.images.shape == (12406, 32, 32, 3)
    np.testing.assert_array_equal(data.class_counts, CIFAR10_LT_IF100_COUNTS)
    np.testing.assert_array_equal(np.bincount(data.labels), data.class_counts)
    assert int(data.indices.sum()) == KEPT_INDEX_SUMS[100]
    assert data.num_classes == 10 and data.imb_factor == 100 and "IF 100" in data.source


def test_cifar10_lt_test_is_balanced_but_carries_the_train_counts():
    shared_file("cifar10_test_jpeg.npz")
    data = cifar_lt("cifar10", "test", imb_factor=50)
    assert len(data) == 10000 and data.indices is None
    np.testing.assert_array_equal(np.bincount(data.labels), [1000] * 10)
    assert data.class_counts.dtype == np.int64 and int(data.class_counts.sum()) == 13996


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Decoded images cached under tmp_path, not in the user's ~/.cache."""
    monkeypatch.setattr(sources, "DECODED_CACHE_DIR", tmp_path / "decoded")


def test_cifar100_lt_test_loads_from_a_cifar100_archive(tmp_path, private_cache):
    data = cifar_lt("cifar100", "test", imb_factor=100, root=make_cifar100_root(tmp_path))
    assert len(data) == 20 and data.num_classes == 100 and len(data.class_names) == 100
    assert int(data.class_counts.sum()) == 10847 and data.class_counts[0] == 500 and data.class_counts[-1] == 5


def test_cifar100_lt_train_needs_the_full_training_set(tmp_path, private_cache):
    with pytest.raises(ValueError, match="has 20 images.*full 50000-image set"):
        cifar_lt("cifar100", "train", root=make_cifar100_root(tmp_path))


def test_cifar_lt_rejects_an_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        cifar_lt("cifar10", "val", root=tmp_path)


def test_cifar_dataset_feeds_a_dataloader(tmp_path, private_cache):
    data = cifar_lt("cifar100", "test", root=make_cifar100_root(tmp_path))
    dataset = CifarDataset(data, transform=transforms.ToTensor())
    images, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert labels.tolist() == data.labels[:4].tolist()
    torch.testing.assert_close(images[0], torch.from_numpy(data.images[0]).permute(2, 0, 1) / 255.0)
