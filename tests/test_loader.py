"""ArrayLoader: epoch coverage, batch counts, per-epoch determinism, rank split and output format."""

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler, Sampler

from ltzoo.augment.crops import RandomCropFlip
from ltzoo.augment.views import MultiView
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.batch_transforms import Compose, Normalize
from ltzoo.data.loader import ArrayLoader, Batch


def _dataset(n: int = 23, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return images, torch.arange(n) % 5


def _transform() -> Compose:
    return Compose([RandomCropFlip(8, padding=2), Normalize(CIFAR_MEAN, CIFAR_STD)])


def _epoch(loader: ArrayLoader) -> list[Batch]:
    return list(loader)


def test_one_epoch_covers_every_index_exactly_once():
    images, labels = _dataset()
    loader = ArrayLoader(images, labels, batch_size=5, transform=_transform())
    indices = torch.cat([batch.indices for batch in _epoch(loader)])
    assert sorted(indices.tolist()) == list(range(23))


def test_len_counts_the_partial_last_batch_unless_drop_last():
    images, labels = _dataset()
    assert len(ArrayLoader(images, labels, 5, _transform())) == 5
    assert len(ArrayLoader(images, labels, 5, _transform(), drop_last=True)) == 4
    assert len(_epoch(ArrayLoader(images, labels, 5, _transform(), drop_last=True))) == 4


def test_labels_follow_the_indices():
    images, labels = _dataset()
    for batch in ArrayLoader(images, labels, 4, _transform()):
        assert torch.equal(batch.labels, labels[batch.indices]) and batch.labels.dtype == torch.int64


def test_same_epoch_twice_gives_bitwise_identical_batches():
    images, labels = _dataset()
    loader = ArrayLoader(images, labels, 6, _transform(), seed=3)
    loader.set_epoch(2)
    first = _epoch(loader)
    fresh = ArrayLoader(images, labels, 6, _transform(), seed=3)
    fresh.set_epoch(2)
    for a, b in zip(first, _epoch(fresh)):
        assert torch.equal(a.images, b.images) and torch.equal(a.indices, b.indices)


def test_different_epochs_give_different_orders_and_augmentations():
    images, labels = _dataset()
    loader = ArrayLoader(images, labels, 23, _transform())
    epoch0 = _epoch(loader)[0]
    loader.set_epoch(1)
    epoch1 = _epoch(loader)[0]
    assert not torch.equal(epoch0.indices, epoch1.indices)
    same_images_order = torch.argsort(epoch0.indices), torch.argsort(epoch1.indices)
    assert not torch.equal(epoch0.images[same_images_order[0]], epoch1.images[same_images_order[1]])


def test_ranks_split_the_epoch_into_disjoint_equal_shares():
    images, labels = _dataset(n=24)
    loaders = [ArrayLoader(images, labels, 5, _transform(), rank=r, world_size=2) for r in range(2)]
    shares = [torch.cat([batch.indices for batch in loader]) for loader in loaders]
    assert len(shares[0]) == len(shares[1]) == 12
    assert set(shares[0].tolist()).isdisjoint(shares[1].tolist())
    assert sorted(torch.cat(shares).tolist()) == list(range(24))


def test_ranks_match_distributed_sampler_including_padding():
    images, labels = _dataset(n=23)
    for rank in range(3):
        loader = ArrayLoader(images, labels, 4, _transform(), seed=7, rank=rank, world_size=3)
        loader.set_epoch(5)
        sampler = DistributedSampler(range(23), num_replicas=3, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(5)
        assert loader.rank_indices().tolist() == list(sampler)
        assert len(loader) == 2


def test_ranks_draw_different_augmentations_of_the_same_images():
    images, labels = _dataset(n=4)
    pairs = [0, 0, 1, 1, 2, 2, 3, 3]
    loaders = [ArrayLoader(images, labels, 4, _transform(), sampler=pairs, rank=r, world_size=2) for r in range(2)]
    batches = [_epoch(loader)[0] for loader in loaders]
    assert torch.equal(batches[0].indices, batches[1].indices)
    assert not torch.equal(batches[0].images, batches[1].images)


def test_output_is_float_channels_last():
    images, labels = _dataset()
    batch = _epoch(ArrayLoader(images, labels, 8, _transform()))[0]
    assert batch.images.dtype == torch.float32
    assert batch.images.is_contiguous(memory_format=torch.channels_last)


def test_multiview_batches_are_tuples_of_channels_last_views():
    images, labels = _dataset()
    views = MultiView((_transform(), _transform()))
    batch = _epoch(ArrayLoader(images, labels, 8, views))[0]
    assert isinstance(batch.images, tuple) and len(batch.images) == 2
    assert all(view.is_contiguous(memory_format=torch.channels_last) for view in batch.images)


def test_numpy_nhwc_images_are_accepted():
    images, labels = _dataset()
    nhwc = images.permute(0, 2, 3, 1).numpy()
    identity = Normalize((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))
    batch = _epoch(ArrayLoader(nhwc, labels.numpy(), 4, identity))[0]
    torch.testing.assert_close(batch.images, images[batch.indices].float())


class _RecordingSampler(Sampler[int]):
    def __init__(self, order: list[int]) -> None:
        self.order, self.epochs = order, []

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_sampler_order_is_used_and_told_the_epoch():
    images, labels = _dataset()
    sampler = _RecordingSampler([3, 3, 1, 0, 22])
    loader = ArrayLoader(images, labels, 2, RandomCropFlip(8, padding=1), sampler=sampler)
    loader.set_epoch(4)
    assert torch.cat([b.indices for b in loader]).tolist() == [3, 3, 1, 0, 22]
    assert sampler.epochs == [4]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, ValueError),
        ({"rank": 2, "world_size": 2}, ValueError),
        ({"images": np.zeros((4, 8, 8, 3), dtype=np.float32)}, ValueError),
        ({"labels": torch.arange(3)}, ValueError),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error):
    images, labels = _dataset(n=4)
    arguments = {"images": images, "labels": labels, "batch_size": 2, "transform": _transform()} | kwargs
    with pytest.raises(error):
        ArrayLoader(**arguments)
