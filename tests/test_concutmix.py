"""ConCutMix: the batch CutMix box and area label, semantic label rectification, and the method
(docs/methods/concutmix.md §4 items 6-10 and one training step)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ltzoo
from ltzoo.augment.concutmix import rectification_weight, rectify_label, semantic_label
from ltzoo.augment.cutmix import area_label, cutmix_batch
from ltzoo.data import ArrayLoader, img_num_per_cls
from ltzoo.losses import LogitAdjustedLoss
from ltzoo.methods import ConCutMixMethod, TrainSet, build_method

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package, not installed

from training.config import load_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = sorted((ROOT / "training" / "configs").glob("*_concutmix_*.yaml"))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)

# §4 item 7: u = (0, 0); q = (3, 4), (0, 1), (6, 8) → d = (5, 1, 10), sim = (0.2, 1, 0.1)
ORIGIN = torch.zeros(1, 2)
HAND_PROTOTYPES = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
HAND_COUNTS = torch.tensor([100, 10, 10])
HAND_AREA = torch.tensor([[0.75, 0.0, 0.25]])


# --- the box and the area label (§3.3 steps 1-3, §4 item 10) -------------------------------------------------------

@pytest.mark.parametrize(("side", "lam0", "centre", "box", "lam"), [
    (32, 0.5, (16, 16), (5, 5, 27, 27), 0.52734375),
    (32, 0.5, (0, 0), (0, 0, 11, 11), 0.8818359375),
    (32, 0.3, (31, 5), (18, 0, 32, 18), 0.75390625),
    (32, 0.0, (15, 15), (0, 0, 31, 31), 0.0615234375),
    (224, 0.5, (112, 112), (33, 33, 191, 191), 0.5024713010),
    (224, 0.9, (10, 200), (0, 165, 45, 224), 0.9470862564),
])
def test_one_box_for_the_whole_batch_and_one_scalar_lambda(side, lam0, centre, box, lam):
    images, patches = torch.zeros(3, 1, side, side), torch.ones(3, 1, side, side)
    mixed, mixed_lam = cutmix_batch(images, patches, lam0, torch.tensor([centre]))
    x1, y1, x2, y2 = box
    expected = torch.zeros(side, side)
    expected[x1:x2, y1:y2] = 1.0
    for image in mixed:
        torch.testing.assert_close(image[0], expected, rtol=0, atol=0)
    assert isinstance(mixed_lam, float)
    assert mixed_lam == pytest.approx(lam, abs=1e-7)


def test_cutmix_leaves_the_base_batch_untouched():
    images = torch.zeros(2, 3, 8, 8)
    cutmix_batch(images, torch.ones(2, 3, 8, 8), 0.5, torch.tensor([[4, 4]]))
    assert images.abs().sum() == 0


def test_area_label_is_lambda_on_the_base_class_and_the_rest_on_the_patch_class():
    target = area_label(torch.tensor([0, 2]), torch.tensor([1, 2]), 0.75, 3)
    torch.testing.assert_close(target, torch.tensor([[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]]))


# --- semantic label rectification (§3.4, §4 items 7-9) ---------------------------------------------------------------

def test_hand_case_semantic_label_keeps_the_top_two_and_l1_normalises():
    torch.testing.assert_close(semantic_label(ORIGIN, HAND_PROTOTYPES, topk=2), torch.tensor([[1 / 6, 5 / 6, 0.0]]))


@pytest.mark.parametrize(("omega", "rho", "rectified"), [
    (1.0, 0.4723254, (0.4744768, 0.3936045, 0.1319186)),
    (200 / 255, 0.3704513, (0.5339034, 0.3087094, 0.1573872)),
])
def test_hand_case_rectified_label(omega, rho, rectified):
    assert rectification_weight(HAND_AREA, HAND_COUNTS, omega).item() == pytest.approx(rho, abs=1e-7)
    assert math.log(77.5) / math.log(1e4) == pytest.approx(0.4723254, abs=1e-7)
    label = rectify_label(HAND_AREA, ORIGIN, HAND_PROTOTYPES, HAND_COUNTS, topk=2, omega=omega)
    torch.testing.assert_close(label, torch.tensor([rectified]), rtol=0, atol=1e-6)


def test_top_k_keeps_every_entry_tied_with_the_kth_largest():
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    torch.testing.assert_close(semantic_label(ORIGIN, prototypes, topk=1), torch.tensor([[0.5, 0.5, 0.0]]))
    label = rectify_label(torch.tensor([[1.0, 0.0, 0.0]]), ORIGIN, prototypes, torch.tensor([10, 10, 10]), 1, 1.0)
    assert rectification_weight(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([10, 10, 10]), 1.0).item() == \
        pytest.approx(1 / 3)
    torch.testing.assert_close(label, torch.tensor([[5 / 6, 1 / 6, 0.0]]))


def test_a_projection_on_a_prototype_gives_a_finite_label():
    label = rectify_label(HAND_AREA, HAND_PROTOTYPES[1:2], HAND_PROTOTYPES, HAND_COUNTS, topk=2, omega=1.0)
    assert torch.isfinite(label).all()


@pytest.mark.parametrize(("num_classes", "imb_factor", "omega", "log_sum", "rho_min", "rho_max"), [
    (100, 100, 20 / 255, 389.16983, 3.24358e-4, 1.25246e-3),
    (100, 50, 20 / 255, 424.62561, 4.25304e-4, 1.14788e-3),
    (100, 10, 20 / 255, 505.93802, 6.06448e-4, 9.63399e-4),
    (10, 100, 2 / 255, 62.13756, 4.93784e-4, 1.07506e-3),
    (10, 50, 2 / 255, 65.60266, 5.50572e-4, 1.01827e-3),
    (10, 10, 2 / 255, 73.65627, 6.61750e-4, 9.06936e-4),
])
def test_rho_table_for_the_cifar_lt_counts(num_classes, imb_factor, omega, log_sum, rho_min, rho_max):
    counts = torch.tensor(img_num_per_cls(50000 // num_classes, num_classes, imb_factor))
    assert counts.double().log().sum().item() == pytest.approx(log_sum, abs=1e-5)
    one_hot = torch.eye(num_classes)[[num_classes - 1, 0]]  # the tail class (N_min), the head class (N_max)
    rho = rectification_weight(one_hot, counts, omega)
    torch.testing.assert_close(rho, torch.tensor([rho_min, rho_max]), rtol=1e-5, atol=0)


def test_mean_normaliser_scales_rho_by_the_number_of_classes():
    counts = torch.tensor(img_num_per_cls(5000, 10, 100))
    area = area_label(torch.tensor([0, 9]), torch.tensor([3, 3]), 0.6, 10)
    torch.testing.assert_close(rectification_weight(area, counts, 0.5, rho_norm="mean"),
                               10 * rectification_weight(area, counts, 0.5, rho_norm="sum"))


def test_rectified_rows_sum_to_one_and_carry_no_gradient():
    generator = torch.Generator().manual_seed(0)
    projections = torch.randn(6, 4, generator=generator, requires_grad=True)
    prototypes = torch.randn(5, 4, generator=generator, requires_grad=True)
    area = area_label(torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([4, 4, 1, 3, 0, 2]), 0.3, 5)
    label = rectify_label(area, projections, prototypes, torch.tensor([50, 20, 10, 5, 2]), topk=2, omega=200 / 255)
    torch.testing.assert_close(label.sum(dim=1), torch.ones(6))
    assert not label.requires_grad


# --- the method ------------------------------------------------------------------------------------------------------

@pytest.fixture
def train_set() -> TrainSet:
    """A tiny long-tailed split of random 32×32 images over 4 classes."""
    labels = np.repeat(np.arange(4), [6, 4, 3, 3])
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    return TrainSet(labels, 8, 0, MEAN, STD, images=images)


def tiny_model(method: ConCutMixMethod) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ltzoo.create_model("resnet32_concutmix_cifar10_lt", num_classes=method.num_classes)
    model.train_heads.update(ltzoo.models.build_train_heads(method.heads_spec(model.num_features)))
    return model


def first_batch(method: ConCutMixMethod, train_set: TrainSet, epoch: int):
    loader = ArrayLoader(train_set.images, train_set.labels, train_set.batch_size,
                         method.cifar_transform(MEAN, STD), seed=train_set.seed)
    loader.set_epoch(epoch)
    method.bind_data(train_set)
    method.on_epoch_start(epoch)
    return next(iter(loader))


def method_for(train_set: TrainSet, **options) -> ConCutMixMethod:
    return ConCutMixMethod(np.bincount(train_set.labels), epochs=4, topk=2, **options)


def test_until_warm_epoch_the_soft_target_loss_is_the_two_term_logit_adjusted_loss():
    """§4 item 6: for e ≤ E_w, CE on the mixed target = λ·LA-CE(s, a) + (1 − λ)·LA-CE(s, b)."""
    method = ConCutMixMethod([50, 20, 5], epochs=4, tau=0.9, topk=2, warm_epoch=2)
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    a, b, lam = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 0, 1]), 0.6
    target = method.mixed_target(area_label(a, b, lam, 3), forward=None, epoch=2)
    la = LogitAdjustedLoss([50, 20, 5], tau=0.9)
    expected = lam * la(logits, a) + (1 - lam) * la(logits, b)
    torch.testing.assert_close(method.soft_classification(logits, target), expected, rtol=0, atol=1e-6)


def test_rectification_is_inactive_at_the_warm_epoch_and_active_after_it():
    method = ConCutMixMethod([50, 20, 5], epochs=10, topk=2, warm_epoch=4)
    assert [method.rectifies(e) for e in (0, 4, 5, 9)] == [False, False, True, True]


def test_with_warm_epoch_at_or_past_the_last_epoch_every_target_is_the_area_label():
    method = ConCutMixMethod([50, 20, 5], epochs=10, topk=2, warm_epoch=10)
    area = area_label(torch.tensor([0]), torch.tensor([2]), 0.4, 3)
    assert all(method.mixed_target(area, forward=None, epoch=e) is area for e in range(10))


def test_a_forced_cutmix_step_with_rectification_trains_every_part(train_set):
    method = method_for(train_set, cutmix_prob=1.0, warm_epoch=0)
    model = tiny_model(method)
    loss, logs = method.training_step(model, first_batch(method, train_set, epoch=1), epoch=1)
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"loss", "ce", "bcl"}
    for name in ("fc.weight", "train_heads.head.net.0.weight", "train_heads.head_fc.net.0.weight", "conv1.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_a_step_is_reproducible_from_the_epoch_alone(train_set):
    """Patch stream and per-batch draws are seeded by (seed, epoch): resuming at an epoch start repeats the step."""
    losses = []
    for _ in range(2):
        method = method_for(train_set, cutmix_prob=1.0, warm_epoch=0)
        losses.append(method.training_step(tiny_model(method), first_batch(method, train_set, epoch=2), 2)[0])
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)


def test_without_cutmix_the_step_is_the_bcl_step(train_set):
    method = method_for(train_set, cutmix_prob=0.0)
    batch = first_batch(method, train_set, epoch=0)
    bcl_method = build_method("bcl", np.bincount(train_set.labels), 4)
    torch.testing.assert_close(method.training_step(tiny_model(method), batch, 0)[0],
                               bcl_method.training_step(tiny_model(method), batch, 0)[0])


def test_a_forced_cutmix_step_differs_from_the_bcl_step(train_set):
    method = method_for(train_set, cutmix_prob=1.0)
    batch = first_batch(method, train_set, epoch=0)
    bcl_method = build_method("bcl", np.bincount(train_set.labels), 4)
    mixed_ce = method.training_step(tiny_model(method), batch, 0)[1]["ce"]
    assert abs(float(mixed_ce - bcl_method.training_step(tiny_model(method), batch, 0)[1]["ce"])) > 1e-4


def test_patch_stream_is_required():
    method = ConCutMixMethod([5, 3], epochs=2, topk=1)
    with pytest.raises(RuntimeError, match="bind_data"):
        method.on_epoch_start(0)


@pytest.mark.parametrize("options", [{"topk": 4}, {"omega": [2, 0]}, {"rho_norm": "max"}, {"patch_sampler": "sqrt"},
                                     {"cutmix_prob": 1.5}])
def test_invalid_options_are_errors(options):
    with pytest.raises(ValueError):
        ConCutMixMethod([5, 3, 2], epochs=2, **{"topk": 2, **options})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_configs_load_and_build_the_method(path):
    cfg = load_config(path)
    num_classes = ltzoo.registry.get_pretrained_cfg(cfg.full_name)["num_classes"]
    options = {k: v for k, v in cfg.method.items() if k != "name"}
    method = build_method(cfg.method["name"], np.arange(num_classes) + 2, cfg.epochs, **options)
    assert isinstance(method, ConCutMixMethod) and method.warm_epoch < cfg.epochs


def test_there_is_a_config_for_every_concutmix_entry():
    assert sorted(p.stem for p in CONFIGS) == sorted(ltzoo.list_models("*_concutmix_*", include_tags=True))
