"""LSM as a plug-in on CE / CE-DRW / LDAM-DRW (docs/methods/lsm.md §3 steps 0–7, §8 tests 6–7, and the method
checks)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ltzoo
import ltzoo.augment.lsm as lsm_augment
from ltzoo.augment.paired import PairedBatch
from ltzoo.data import ArrayLoader
from ltzoo.data.batch_transforms import cifar_eval_transform
from ltzoo.data.loader import Batch
from ltzoo.methods import TrainSet, build_method

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LSM_METHODS = ("ce_lsm", "ce_drw_lsm", "ldam_drw_lsm")
BASE_OF = {"ce_lsm": "ce", "ce_drw_lsm": "ce_drw", "ldam_drw_lsm": "ldam_drw"}
NUM_CLASSES, BATCH, EPOCHS, MIXING_EPOCH = 3, 4, 10, 4
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def train_set(labels: list[int]) -> TrainSet:
    images = np.random.RandomState(0).randint(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    return TrainSet(np.asarray(labels), BATCH, seed=0, mean=MEAN, std=STD, images=images)


def head_batch(data: TrainSet) -> Batch:
    """The first batch of a fixed-order loader over the split, standing in for the main loader's batch."""
    loader = ArrayLoader(data.images, data.labels, BATCH, cifar_eval_transform(MEAN, STD), seed=0)
    return next(iter(loader))


def make_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return ltzoo.create_model(f"resnet32_{name}_cifar10_lt", num_classes=NUM_CLASSES).train()


def ready(name: str, data: TrainSet, epoch: int = MIXING_EPOCH, **options: object) -> object:
    method = build_method(name, np.bincount(data.labels, minlength=NUM_CLASSES), EPOCHS, **options)
    method.bind_data(data)
    method.on_epoch_start(epoch)
    return method


def record_mix(method: object, monkeypatch: pytest.MonkeyPatch) -> list[PairedBatch]:
    """Record the PairedBatch of every mixed step."""
    batches: list[PairedBatch] = []
    original: Callable[..., PairedBatch] = method.engine.mix

    def mix(*args: object) -> PairedBatch:
        batches.append(original(*args))
        return batches[-1]

    monkeypatch.setattr(method.engine, "mix", mix)
    return batches


SKEWED = [0] * 8 + [1] * 4 + [2] * 2


@pytest.mark.parametrize("name", LSM_METHODS)
def test_one_mixed_training_step_runs_and_back_propagates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set(SKEWED)
    method, model = ready(name, data, p_mix=1.0), make_model(name)
    mixed = record_mix(method, monkeypatch)
    loss, logs = method.training_step(model, head_batch(data), MIXING_EPOCH)
    loss.backward()
    assert logs["augmented"] == 1.0 and len(mixed) == 1
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", LSM_METHODS)
def test_gate_off_step_is_bitwise_the_base_step(name: str) -> None:
    data = train_set(SKEWED)
    base, lsm = ready(BASE_OF[name], data), ready(name, data, p_mix=0.0)
    model = make_model(name)
    twin = copy.deepcopy(model)
    batch = head_batch(data)
    base_loss, _ = base.training_step(model, batch, MIXING_EPOCH)
    lsm_loss, _ = lsm.training_step(twin, batch, MIXING_EPOCH)
    base_loss.backward()
    lsm_loss.backward()
    assert torch.equal(base_loss, lsm_loss)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(model.parameters(), twin.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))


@pytest.mark.parametrize(("epoch", "mixes"), [(3, False), (4, True), (6, True), (7, False)])
def test_mixing_happens_only_when_mix_start_lt_epoch_lt_epochs_minus_mix_end(epoch: int, mixes: bool) -> None:
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, epoch=epoch, p_mix=1.0, mix_start=3, mix_end=3)
    _, logs = method.training_step(make_model("ce_lsm"), head_batch(data), epoch)
    assert logs["augmented"] == float(mixes)


def test_with_uniform_drw_weights_the_loss_is_the_batch_mean_of_weighted_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set([0, 1, 2] * 4)  # equal counts: DRW weights all 1
    method = ready("ce_drw_lsm", data, p_mix=1.0, drw_start=0)
    model = make_model("ce_drw_lsm")
    mixed = record_mix(method, monkeypatch)
    loss, _ = method.training_step(model, head_batch(data), MIXING_EPOCH)
    paired = mixed[0]
    logits = model(paired.images)
    head_term = paired.lam * F.cross_entropy(logits, paired.labels, reduction="none")
    tail_term = (1 - paired.lam) * F.cross_entropy(logits, paired.minor_labels, reduction="none")
    assert method.loss.class_weight is not None
    assert torch.allclose(loss, (head_term + tail_term).mean(), atol=1e-6)


def test_with_one_label_and_no_drw_the_loss_is_the_base_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set([1] * 8)
    method = ready("ce_lsm", data, p_mix=1.0)
    model = make_model("ce_lsm")
    mixed = record_mix(method, monkeypatch)
    loss, _ = method.training_step(model, head_batch(data), MIXING_EPOCH)
    paired = mixed[0]
    assert 0.0 < paired.lam.max() < 1.0  # both terms carry weight
    assert torch.allclose(loss, F.cross_entropy(model(paired.images), paired.labels), atol=1e-6)


def test_keeping_every_unit_gives_the_tail_image_and_its_label(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lsm_augment, "unit_mask", lambda scores, lam, rule: torch.ones_like(scores, dtype=torch.bool))
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0)
    model = make_model("ce_lsm")
    mixed = record_mix(method, monkeypatch)
    loss, _ = method.training_step(model, head_batch(data), MIXING_EPOCH)
    paired = mixed[0]
    assert torch.equal(paired.images, paired.minor_images)
    assert torch.equal(paired.lam, torch.zeros(BATCH))
    assert torch.allclose(loss, F.cross_entropy(model(paired.minor_images), paired.minor_labels), atol=1e-6)


def test_with_area_head_weight_the_tail_label_share_is_at_least_its_area(monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0, head_weight="area")
    mixed = record_mix(method, monkeypatch)
    method.training_step(make_model("ce_lsm"), head_batch(data), MIXING_EPOCH)
    tail_area = mixed[0].mask.float().mean(dim=(1, 2, 3))
    assert (1 - mixed[0].lam >= tail_area - 1e-6).all()


@pytest.mark.parametrize("options", [{"mask_rule": "threshold"}, {"tail_sampler": "reversed"}, {"patch_size": 8}])
def test_each_switch_gives_a_mixed_step(options: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0, **options)
    mixed = record_mix(method, monkeypatch)
    loss, _ = method.training_step(make_model("ce_lsm"), head_batch(data), MIXING_EPOCH)
    kept = mixed[0].mask.float().mean(dim=(1, 2, 3))
    assert torch.isfinite(loss) and ((0 < kept) & (kept < 1)).all()


def test_the_saliency_pass_leaves_batch_norm_statistics_to_the_training_forward() -> None:
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0)
    model = make_model("ce_lsm")
    method.training_step(model, head_batch(data), MIXING_EPOCH)
    assert model.bn1.num_batches_tracked.item() == 1


@pytest.mark.parametrize("name", LSM_METHODS)
def test_lsm_adds_no_parameters(name: str) -> None:
    lsm_model = ltzoo.create_model(f"resnet32_{name}_cifar10_lt")
    base_model = ltzoo.create_model(f"resnet32_{BASE_OF[name]}_cifar10_lt")
    assert build_method(name, [2, 1], EPOCHS).heads_spec(lsm_model.head_hidden_size) is None
    assert {k: v.shape for k, v in lsm_model.state_dict().items()} == \
        {k: v.shape for k, v in base_model.state_dict().items()}


def test_unnormalised_labels_weigh_each_term_by_its_raw_saliency_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """`normalise=False`: L = (1/B) Σ (w_h ℓ_h + w_t ℓ_t) with SnapMix's raw shares, which need not sum to one."""
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0, normalise=False)
    model = make_model("ce_lsm")
    mixed = record_mix(method, monkeypatch)
    loss, _ = method.training_step(model, head_batch(data), MIXING_EPOCH)
    paired = mixed[0]
    assert not torch.allclose(paired.lam + paired.minor_lam, torch.ones(BATCH))
    logits = model(paired.images)
    expected = (paired.lam * F.cross_entropy(logits, paired.labels, reduction="none")
                + paired.minor_lam * F.cross_entropy(logits, paired.minor_labels, reduction="none")).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_normalised_labels_sum_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    data = train_set(SKEWED)
    method = ready("ce_lsm", data, p_mix=1.0)
    mixed = record_mix(method, monkeypatch)
    method.training_step(make_model("ce_lsm"), head_batch(data), MIXING_EPOCH)
    torch.testing.assert_close(mixed[0].lam + mixed[0].minor_lam, torch.ones(BATCH))
