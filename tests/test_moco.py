"""The MoCo machinery of DSCL (ltzoo.methods.moco; docs/methods/dscl.md §6.7, §6.8, §6.9): EMA over parameters only, the
labelled ring queue with its `masked` / `random` starts, and the one-process key BN (`split` / `plain`) with no process
group."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ltzoo.methods.moco import MemoryQueue, MomentumKeyEncoder, check_queue_size, gather, world_size


class TinyEncoder(nn.Module):
    """conv → BN → ReLU → global mean → linear: enough to make batch statistics matter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def embed(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return F.normalize(encoder(images), dim=1)


def images(batch: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_ema_update_moves_the_key_parameters_by_one_minus_m():
    query = TinyEncoder()
    key = MomentumKeyEncoder(query, embed, momentum=0.999)
    with torch.no_grad():
        for parameter in key.encoder.parameters():
            parameter.zero_()
        for parameter in query.parameters():
            parameter.fill_(1.0)
    key.update(query)
    for parameter in key.encoder.parameters():
        torch.testing.assert_close(parameter, torch.full_like(parameter, 0.001))


def test_ema_update_leaves_the_key_bn_buffers_alone():
    query = TinyEncoder()
    key = MomentumKeyEncoder(query, embed, momentum=0.5)
    query.bn.running_mean.fill_(5.0)
    query.bn.running_var.fill_(7.0)
    key.update(query)
    assert torch.equal(key.encoder.bn.running_mean, torch.zeros(4))
    assert torch.equal(key.encoder.bn.running_var, torch.ones(4))


def test_key_encoder_is_a_copy_without_gradients():
    query = TinyEncoder()
    key = MomentumKeyEncoder(query, embed)
    assert all(not p.requires_grad for p in key.parameters())
    assert not {id(p) for p in key.parameters()} & {id(p) for p in query.parameters()}
    assert not key(images()).requires_grad


def test_key_pass_in_train_mode_updates_the_key_bn_statistics():
    key = MomentumKeyEncoder(TinyEncoder(), embed, key_bn="plain")
    key(images())
    assert not torch.equal(key.encoder.bn.running_mean, torch.zeros(4))


def split_and_plain(bn_splits: int) -> tuple[MomentumKeyEncoder, MomentumKeyEncoder]:
    """Two key encoders copied from the same query encoder: `split` with `bn_splits` groups and `plain`."""
    query = TinyEncoder()
    return (MomentumKeyEncoder(query, embed, key_bn="split", bn_splits=bn_splits),
            MomentumKeyEncoder(query, embed, key_bn="plain"))


def test_split_with_one_group_equals_plain():
    split, plain = split_and_plain(1)
    torch.testing.assert_close(split(images()), plain(images()), rtol=1e-5, atol=1e-6)


def test_split_uses_sub_batch_statistics():
    split, plain = split_and_plain(2)
    assert not torch.allclose(split(images()), plain(images()), atol=1e-4)


def test_split_undoes_its_permutation_in_eval_mode():
    split, plain = split_and_plain(4)
    split.eval()
    plain.eval()
    torch.testing.assert_close(split(images()), plain(images()), rtol=1e-5, atol=1e-6)


def test_split_takes_an_uneven_or_short_last_batch():
    split, plain = split_and_plain(4)
    split.eval()
    plain.eval()
    for batch in (7, 3):
        torch.testing.assert_close(split(images(batch)), plain(images(batch)), rtol=1e-5, atol=1e-6)


def test_no_process_group_means_world_size_one_and_identity_gather():
    tensor = torch.arange(6.0)
    assert world_size() == 1
    assert gather(tensor) is tensor


def unit_keys(count: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(count, 4, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_queue_wraps_the_pointer_modulo_k():
    queue = MemoryQueue(6, 4, num_classes=3)
    first, second = unit_keys(4, 0), unit_keys(4, 1)
    queue.enqueue(first, torch.tensor([0, 1, 2, 0]))
    queue.enqueue(second, torch.tensor([1, 1, 2, 2]))
    assert int(queue.pointer) == 2 and int(queue.filled) == 6
    torch.testing.assert_close(queue.features, torch.cat([second[2:], first[2:], second[:2]]))
    assert queue.labels.tolist() == [2, 2, 2, 0, 1, 1]


def test_queue_labels_stay_with_their_keys():
    queue = MemoryQueue(8, 4, num_classes=5)
    keys, labels = unit_keys(3, 2), torch.tensor([4, 0, 3])
    queue.enqueue(keys, labels)
    features, queued_labels = queue.contents()
    torch.testing.assert_close(features, keys)
    assert queued_labels.tolist() == labels.tolist()


def test_masked_queue_holds_only_written_slots():
    queue = MemoryQueue(8, 4, num_classes=5, init="masked")
    assert queue.contents()[0].shape == (0, 4)
    queue.enqueue(unit_keys(2, 3), torch.tensor([1, 2]))
    features, labels = queue.contents()
    assert features.shape == (2, 4) and labels.shape == (2,)


def test_random_queue_is_full_of_seeded_unit_vectors_with_labels_in_range():
    queue, again = MemoryQueue(16, 4, num_classes=3, init="random", seed=5), MemoryQueue(16, 4, 3, "random", seed=5)
    features, labels = queue.contents()
    assert features.shape == (16, 4)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(16))
    assert 0 <= int(labels.min()) and int(labels.max()) < 3
    assert torch.equal(features, again.contents()[0]) and torch.equal(labels, again.contents()[1])


def test_queue_contents_are_copies_that_a_later_enqueue_cannot_change():
    queue = MemoryQueue(4, 4, num_classes=2)
    queue.enqueue(unit_keys(2, 4), torch.tensor([0, 1]))
    before, _ = queue.contents()
    snapshot = before.clone()
    queue.enqueue(unit_keys(2, 5), torch.tensor([1, 0]))
    queue.enqueue(unit_keys(2, 6), torch.tensor([1, 0]))  # overwrites the first two slots
    assert torch.equal(before, snapshot)


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    check_queue_size(6144, 256)
    with pytest.raises(ValueError, match="not divisible by the global batch 256"):
        check_queue_size(6000, 256)


def test_unknown_queue_init_and_key_bn_are_errors():
    with pytest.raises(ValueError, match="queue_init"):
        MemoryQueue(4, 4, 2, init="zeros")
    with pytest.raises(ValueError, match="key_bn"):
        MomentumKeyEncoder(TinyEncoder(), embed, key_bn="shuffle")
