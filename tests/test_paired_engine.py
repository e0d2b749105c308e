"""The paired-minority engine (docs/methods/baselines.md §6): its plain configuration IS CMO; gate, minority stream,
saliency boxes, fills, plugged-in regions and the two-term loss with DRW normalised term by term."""

import copy
import dataclasses
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ltzoo
from ltzoo.augment import PairedMinorityEngine, centred_boxes, opencv_finegrained_saliency, peaks, to_uint8_images
from ltzoo.augment.paired import MINOR_SEED_OFFSET, PairedMixing
from ltzoo.augment.saliency import model_saliency, upsample
from ltzoo.augment.views import cifar_train_transform
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data import ArrayLoader, ClassAwareSampler
from ltzoo.losses import class_balanced_weights
from ltzoo.methods import CMO, TrainSet

COUNTS = [20, 12, 8, 6, 5, 4, 3, 3, 2, 1]  # 64 images of 10 classes
BATCH = 16
EPOCHS = 10


def tiny_train_set(seed: int = 0) -> TrainSet:
    rng = np.random.RandomState(seed)
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    images = rng.randint(0, 256, (len(labels), 32, 32, 3)).astype(np.uint8)
    return TrainSet(labels, BATCH, seed, CIFAR_MEAN, CIFAR_STD, images=images)


def main_loader(train_set: TrainSet, epoch: int) -> ArrayLoader:
    loader = ArrayLoader(train_set.images, train_set.labels, BATCH, cifar_train_transform(CIFAR_MEAN, CIFAR_STD),
                         seed=train_set.seed)
    loader.set_epoch(epoch)
    return loader


def bound_engine(epoch: int = 4, patch_region=None, **options) -> tuple[PairedMinorityEngine, TrainSet]:
    train_set = tiny_train_set()
    engine = PairedMinorityEngine(EPOCHS, PairedMixing(**options), patch_region)
    engine.bind_data(train_set, cifar_train_transform(CIFAR_MEAN, CIFAR_STD))
    engine.set_epoch(epoch)
    return engine, train_set


def cmo_at(epoch: int, **options) -> CMO:
    method = CMO(COUNTS, EPOCHS, **options)
    method.bind_data(tiny_train_set())
    method.on_epoch_start(epoch)
    return method


def reference_cmo(images, labels, minor_images, minor_labels, rng):
    """CMO's own step as naver-ai/cmo writes it (coin, λ, rand_bbox, paste, ratio), on a numpy Generator."""
    r = rng.random()
    assert r < 0.5, "pick a seed whose first coin opens the gate"
    lam = rng.beta(1.0, 1.0)
    size_w, size_h = images.shape[2], images.shape[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(size_w * cut_rat), int(size_h * cut_rat)
    cx, cy = rng.integers(size_w), rng.integers(size_h)
    bbx1, bby1 = np.clip(cx - cut_w // 2, 0, size_w), np.clip(cy - cut_h // 2, 0, size_h)
    bbx2, bby2 = np.clip(cx + cut_w // 2, 0, size_w), np.clip(cy + cut_h // 2, 0, size_h)
    mixed = images.clone()
    mixed[:, :, bbx1:bbx2, bby1:bby2] = minor_images[:, :, bbx1:bbx2, bby1:bby2]
    ratio = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (size_w * size_h))
    return mixed, (bbx1, bby1, bbx2, bby2), ratio


def _first_open_epoch_batch(engine: PairedMinorityEngine, train_set: TrainSet, epoch: int = 4):
    batch = next(iter(main_loader(train_set, epoch)))
    minor = engine.draw_minor(epoch)
    return batch, minor


def test_the_plain_configuration_reproduces_cmo_box_paste_and_ratio():
    engine, train_set = bound_engine()
    batch, minor = _first_open_epoch_batch(engine, train_set)
    reference_rng = copy.deepcopy(engine.rng)
    assert engine.gate(4)
    paired = engine.mix(None, batch.images, batch.labels, minor)
    mixed, box, ratio = reference_cmo(batch.images, batch.labels, minor.images, minor.labels, reference_rng)
    assert torch.equal(paired.images, mixed)
    assert paired.boxes.tolist() == [list(map(int, box))] * BATCH
    assert paired.lam.tolist() == pytest.approx([ratio] * BATCH)
    assert paired.minor_lam.tolist() == pytest.approx([1 - ratio] * BATCH)
    assert torch.equal(paired.labels, batch.labels) and torch.equal(paired.minor_labels, minor.labels)


def test_cmo_loss_is_the_two_term_weighted_cross_entropy():
    method = cmo_at(4, drw_start=4)
    engine = method.engine
    batch, minor = _first_open_epoch_batch(engine, tiny_train_set())
    weight = class_balanced_weights(COUNTS, 0.9999)
    engine.gate(4)
    paired = engine.mix(None, batch.images, batch.labels, minor)
    logits = torch.randn(BATCH, 10, generator=torch.Generator().manual_seed(0))
    lam = paired.lam[0].item()
    expected = (lam * F.cross_entropy(logits, paired.labels, weight=weight)
                + (1 - lam) * F.cross_entropy(logits, paired.minor_labels, weight=weight))
    torch.testing.assert_close(method.mixed_loss(logits, paired), expected)


def test_drw_normalises_each_label_term_by_its_own_weight_sum():
    method = cmo_at(0, drw_start=0)
    weight = class_balanced_weights(COUNTS, 0.9999)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 10, generator=generator)
    labels, minor_labels = torch.tensor([0, 0, 1, 2, 0, 1]), torch.tensor([9, 8, 9, 7, 6, 9])
    lam = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.7, 0.2])
    paired = type("P", (), {"labels": labels, "minor_labels": minor_labels, "lam": lam, "minor_lam": 1 - lam})
    ce = F.cross_entropy(logits, labels, reduction="none")
    ce_minor = F.cross_entropy(logits, minor_labels, reduction="none")
    w, w_minor = weight[labels], weight[minor_labels]
    term_by_term = (lam * w * ce).sum() / w.sum() + ((1 - lam) * w_minor * ce_minor).sum() / w_minor.sum()
    joint = (lam * w * ce + (1 - lam) * w_minor * ce_minor).sum() / (lam * w + (1 - lam) * w_minor).sum()
    torch.testing.assert_close(method.mixed_loss(logits, paired), term_by_term)
    assert not torch.allclose(term_by_term, joint)


def test_equal_per_image_lambdas_give_cmos_scalar_lambda_loss():
    method = cmo_at(0, drw_start=0)
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(2))
    labels, minor_labels = torch.tensor([0, 1, 0, 3]), torch.tensor([9, 9, 5, 4])
    paired = type("P", (), {"labels": labels, "minor_labels": minor_labels, "lam": torch.full((4,), 0.3),
                            "minor_lam": torch.full((4,), 0.7)})
    scalar = 0.3 * method.loss(logits, labels) + 0.7 * method.loss(logits, minor_labels)
    torch.testing.assert_close(method.mixed_loss(logits, paired), scalar)


def test_epochs_four_to_e_minus_four_are_eligible():
    engine = PairedMinorityEngine(EPOCHS)
    assert [e for e in range(EPOCHS) if engine.eligible(e)] == [4, 5, 6]


@pytest.mark.parametrize("epoch", [0, 3, 7, 9])
def test_no_minority_batch_and_no_gate_outside_three_to_e_minus_three(epoch):
    engine, _ = bound_engine(epoch)
    assert engine.draw_minor(epoch) is None
    assert not any(engine.gate(epoch) for _ in range(50))


def test_the_gate_opens_for_about_p_of_the_batches():
    engine, _ = bound_engine(p_aug=0.5)
    share = np.mean([engine.gate(4) for _ in range(4000)])
    assert share == pytest.approx(0.5, abs=0.03)


def test_the_minority_stream_has_as_many_batches_as_the_main_loader_and_replays_per_epoch():
    engine, train_set = bound_engine()
    first = [engine.draw_minor(4) for _ in range(len(main_loader(train_set, 4)))]
    engine.set_epoch(4)
    again = [engine.draw_minor(4) for _ in range(len(first))]
    assert [b.images.shape[0] for b in first] == [BATCH] * 4
    assert all(torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images) for a, b in zip(first, again))


def test_the_minority_stream_is_recreated_when_exhausted():
    engine, _ = bound_engine()
    epoch_batches = [engine.draw_minor(4).indices for _ in range(4)]
    assert torch.equal(engine.draw_minor(4).indices, epoch_batches[0])


def test_the_minority_stream_differs_from_the_main_loader_and_between_epochs():
    engine, train_set = bound_engine()
    main = next(iter(main_loader(train_set, 4)))
    minor = engine.draw_minor(4)
    engine.set_epoch(5)
    assert not torch.equal(main.indices, minor.indices)
    assert not torch.equal(minor.indices, engine.draw_minor(5).indices)


def test_zero_fill_blanks_the_box_to_the_mean_colour_and_keeps_the_rest():
    engine, train_set = bound_engine(fill="zero")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    paired = engine.mix(None, batch.images, batch.labels, minor)
    mask = paired.mask.expand_as(batch.images)
    assert paired.mask.any()
    assert (paired.images[mask] == 0).all()
    assert torch.equal(paired.images[~mask], batch.images[~mask])


@pytest.fixture(scope="module")
def resnet32():
    torch.manual_seed(0)
    return ltzoo.create_model("resnet32_ce_cifar10_lt").train()


@pytest.mark.parametrize("source", ["cam", "gradcam"])
def test_saliency_boxes_are_centred_on_each_images_model_peak(resnet32, source):
    engine, train_set = bound_engine(region="saliency_box", saliency=source, box_scope="per_image")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    lam = copy.deepcopy(engine.rng).beta(1.0, 1.0)
    paired = engine.mix(resnet32, batch.images, batch.labels, minor)
    maps = upsample(model_saliency(resnet32, batch.images, batch.labels, source), (32, 32))
    assert torch.equal(paired.boxes, centred_boxes(peaks(maps), 32, 32, lam))
    assert len({tuple(b) for b in paired.boxes.tolist()}) > 1


def test_per_batch_saliency_box_is_the_first_images_box_for_all(resnet32):
    engine, train_set = bound_engine(region="saliency_box", saliency="cam", box_scope="per_batch")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    lam = copy.deepcopy(engine.rng).beta(1.0, 1.0)
    paired = engine.mix(resnet32, batch.images, batch.labels, minor)
    maps = upsample(model_saliency(resnet32, batch.images, batch.labels, "cam"), (32, 32))
    first = centred_boxes(peaks(maps)[:1], 32, 32, lam)
    assert paired.boxes.tolist() == first.tolist() * BATCH


def test_opencv_boxes_are_centred_on_the_peak_of_the_uint8_image_map():
    engine, train_set = bound_engine(region="saliency_box", saliency="opencv_finegrained", box_scope="per_image")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    lam = copy.deepcopy(engine.rng).beta(1.0, 1.0)
    paired = engine.mix(None, batch.images, batch.labels, minor)
    maps = opencv_finegrained_saliency(to_uint8_images(batch.images, CIFAR_MEAN, CIFAR_STD))
    assert torch.equal(paired.boxes, centred_boxes(peaks(maps), 32, 32, lam))


def test_a_plugged_in_patch_region_sets_the_mask_and_both_label_weights():
    def top_half(model, images, labels, minor_images, minor_labels, lam):
        mask = torch.zeros(images.shape[0], 1, *images.shape[-2:], dtype=torch.bool)
        mask[..., :16, :] = True
        return mask, torch.full((images.shape[0],), 0.25), torch.full((images.shape[0],), 0.5)

    engine, train_set = bound_engine(region="patch_topk", patch_region=top_half)
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    paired = engine.mix(None, batch.images, batch.labels, minor)
    assert torch.equal(paired.images[..., :16, :], minor.images[..., :16, :])
    assert torch.equal(paired.images[..., 16:, :], batch.images[..., 16:, :])
    assert paired.lam.tolist() == [0.25] * BATCH and paired.boxes is None
    assert paired.minor_lam.tolist() == [0.5] * BATCH


def test_patch_topk_without_a_patch_region_is_an_error():
    with pytest.raises(ValueError, match="patch_region"):
        PairedMinorityEngine(EPOCHS, PairedMixing(region="patch_topk"))


def test_saliency_label_weights_equal_the_area_when_the_maps_are_flat(resnet32):
    flat = copy.deepcopy(resnet32)
    torch.nn.init.zeros_(flat.fc.weight)  # every CAM is 0 → uniform `sum` maps
    engine, train_set = bound_engine(label="saliency", saliency="cam")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    paired = engine.mix(flat, batch.images, batch.labels, minor)
    area = 1.0 - paired.mask.float().mean(dim=(1, 2, 3))
    torch.testing.assert_close(paired.lam, area)


def test_saliency_label_weights_lie_in_the_unit_interval(resnet32):
    engine, train_set = bound_engine(label="saliency", saliency="gradcam")
    batch, minor = _first_open_epoch_batch(engine, train_set)
    engine.gate(4)
    lam = engine.mix(resnet32, batch.images, batch.labels, minor).lam
    assert ((lam >= 0) & (lam <= 1)).all()


@pytest.mark.parametrize(("option", "value"), [("minor_sampler", "instance"), ("region", "circle"),
                                               ("saliency", "random"), ("box_scope", "global"), ("fill", "noise"),
                                               ("label", "soft"), ("cam_target", "top2")])
def test_unknown_parts_are_named_errors(option, value):
    with pytest.raises(ValueError, match=f"unknown {option} '{value}'; choose one of"):
        PairedMixing(**{option: value})


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("p_aug", 1.5, "in [0, 1]"), ("box_beta", 0.0, "> 0"), ("effnum_beta", 1.0, "in [0, 1)"),
    ("aug_start", -2, ">= -1"), ("aug_end", -1, ">= 0"), ("aug_end", 2.5, "an integer >= 0")])
def test_out_of_range_mixing_options_are_named_errors(option, value, allowed):
    with pytest.raises(ValueError, match=rf"^{option} must be {re.escape(allowed)}, got {value}$"):
        PairedMixing(**{option: value})


def test_mixing_options_are_one_frozen_object_the_engine_reads():
    mixing = PairedMixing(p_aug=0.25)
    engine = PairedMinorityEngine(EPOCHS, mixing)
    assert engine.mixing is mixing and engine.mixing.p_aug == 0.25
    with pytest.raises(dataclasses.FrozenInstanceError):
        mixing.p_aug = 1.0  # type: ignore[misc]


def test_training_before_bind_data_is_a_clear_error():
    with pytest.raises(RuntimeError, match="bind_data"):
        PairedMinorityEngine(EPOCHS).set_epoch(0)


class IndexImages(torch.utils.data.Dataset):
    """A split-file stand-in: image i is filled with the value i, its label is labels[i]."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.full((3, 4, 4), float(index)), int(self.labels[index])


def test_on_split_file_datasets_each_rank_draws_its_share_of_the_class_aware_order():
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    drawn = []
    for rank in range(2):
        train_set = TrainSet(labels, 8, 0, CIFAR_MEAN, CIFAR_STD, dataset=IndexImages(labels), rank=rank, world_size=2)
        engine = PairedMinorityEngine(EPOCHS)
        engine.bind_data(train_set, cifar_train_transform(CIFAR_MEAN, CIFAR_STD))
        engine.set_epoch(4)
        batches = [engine.draw_minor(4) for _ in range(4)]  # 64 draws / 2 ranks / batch 8
        assert all(b.images.is_contiguous(memory_format=torch.channels_last) for b in batches)
        indices = torch.cat([b.images[:, 0, 0, 0] for b in batches]).long()
        assert torch.equal(torch.cat([b.labels for b in batches]), torch.as_tensor(labels)[indices])
        drawn.append(indices)
    sampler = ClassAwareSampler(labels, kind="class_balanced", seed=MINOR_SEED_OFFSET)
    sampler.set_epoch(4)
    order = torch.tensor(list(sampler))
    assert torch.equal(drawn[0], order[0::2]) and torch.equal(drawn[1], order[1::2])
