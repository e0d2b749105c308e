"""`cmo`, context-rich minority oversampling (Park et al.) on CE-DRW, as a zoo method: the paper's gate, sampler, box
and loss, declared once in `ltzoo/methods/cmo.py`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ltzoo
from ltzoo import registry
from ltzoo.augment.views import cifar_train_transform
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data import ArrayLoader
from ltzoo.methods import CMO, TrainSet, build_method

COUNTS = [20, 12, 8, 6, 5, 4, 3, 3, 2, 1]  # 64 images of 10 classes
BATCH = 8
EPOCHS = 10


def tiny_train_set() -> TrainSet:
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    images = rng.randint(0, 256, (len(labels), 32, 32, 3)).astype(np.uint8)
    return TrainSet(labels, BATCH, 0, CIFAR_MEAN, CIFAR_STD, images=images)


def bound_method(**options) -> tuple[CMO, ArrayLoader]:
    train_set = tiny_train_set()
    method = build_method("cmo", COUNTS, EPOCHS, **options)
    method.bind_data(train_set)
    loader = ArrayLoader(train_set.images, train_set.labels, BATCH, cifar_train_transform(CIFAR_MEAN, CIFAR_STD),
                         seed=0)
    return method, loader


def test_cmo_is_the_papers_recipe_on_ce_drw():
    method = build_method("cmo", COUNTS, EPOCHS)
    mixing = method.engine.mixing
    assert isinstance(method, CMO) and method.drw is not None and method.drw.start_epoch == 160
    assert (mixing.minor_sampler, mixing.region, mixing.box_scope, mixing.fill, mixing.label) == \
        ("class_balanced", "random_box", "per_batch", "paste", "area")
    assert (mixing.p_aug, mixing.aug_start, mixing.aug_end, mixing.box_beta) == (0.5, 3, 3, 1.0)


def test_cmo_fixes_its_ce_drw_base():
    with pytest.raises(ValueError, match=r"method 'cmo' fixes base_loss='ce_drw'"):
        build_method("cmo", COUNTS, EPOCHS, base_loss="ce")


def test_a_step_pastes_a_minority_box_into_the_batch_and_mixes_the_label_by_area():
    method, loader = bound_method(p_aug=1.0)
    method.on_epoch_start(4)
    loader.set_epoch(4)
    batch = next(iter(loader))
    torch.manual_seed(0)
    model = ltzoo.create_model("resnet32_cmo_cifar10_lt").train()
    paired, minor = method.draw_pair(model, batch, 4)
    assert paired is not None and minor is not None
    box = paired.mask[:, 0]
    assert torch.equal(box, box[:1].expand_as(box)) and box.any() and not box.all()  # one box for the whole batch
    inside = box[0]
    assert torch.equal(paired.images[:, :, inside], minor.images[:, :, inside])
    assert torch.equal(paired.images[:, :, ~inside], batch.images[:, :, ~inside])
    torch.testing.assert_close(paired.lam, torch.full_like(paired.lam, 1.0 - inside.float().mean().item()))
    assert torch.equal(paired.labels, batch.labels) and torch.equal(paired.minor_labels, minor.labels)
    loss, logs = method.training_step(model, batch, 4)
    assert logs["augmented"] == 1.0 and torch.isfinite(loss)


def test_the_mixed_loss_weighs_both_labels_by_their_share():
    method, loader = bound_method(p_aug=1.0)
    method.on_epoch_start(4)
    loader.set_epoch(4)
    batch = next(iter(loader))
    model = ltzoo.create_model("resnet32_cmo_cifar10_lt").train()
    paired, _ = method.draw_pair(model, batch, 4)
    logits = torch.randn(len(batch.labels), len(COUNTS))
    lam = paired.lam
    expected = (lam * torch.nn.functional.cross_entropy(logits, paired.labels, reduction="none")
                + (1 - lam) * torch.nn.functional.cross_entropy(logits, paired.minor_labels, reduction="none")).mean()
    torch.testing.assert_close(method.mixed_loss(logits, paired), expected)


@pytest.mark.parametrize("epoch", [0, 3, EPOCHS - 3, EPOCHS - 1])
def test_cmo_stops_mixing_outside_its_epochs(epoch: int):
    method, loader = bound_method(p_aug=1.0)
    method.on_epoch_start(epoch)
    loader.set_epoch(epoch)
    batch = next(iter(loader))
    model = ltzoo.create_model("resnet32_cmo_cifar10_lt").train()
    loss, logs = method.training_step(model, batch, epoch)
    assert logs["augmented"] == 0.0 and torch.isfinite(loss)


def test_cmo_has_cifar_and_imagenet_lt_entries():
    assert registry.list_models("*cmo*") == [
        "resnet32_cmo_cifar100_lt", "resnet32_cmo_cifar10_lt", "resnet50_cmo_imagenet_lt"]
    assert registry.get_entry("resnet50_cmo_imagenet_lt").tags == ("e100",)
    assert registry.get_entry("resnet32_cmo_cifar100_lt").ltzoo_recipe is None
    assert registry.METHODS["cmo"].base == "ce_drw"
