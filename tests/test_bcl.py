"""BCL: the balanced contrastive loss (docs/methods/concutmix.md §4 items 1-4) and the BCL training method (items 5,
12)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import ltzoo
from ltzoo.data import ArrayLoader, Batch, img_num_per_cls
from ltzoo.losses import BalancedContrastiveLoss
from ltzoo.methods import BCLMethod, build_method
from ltzoo.methods.bcl import CONTRASTIVE_HEAD, PROTOTYPE_HEAD
from ltzoo.models import inference_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package, not installed

from training.config import load_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# §4 item 1: B = 2, y = (0, 1); anchors [v1; v2]; prototypes p_0 = (1, 0), p_1 = (0, 1).
HAND_ANCHORS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
HAND_LABELS = torch.tensor([0, 1, 0, 1])
HAND_PROTOTYPES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def unit_rows(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1)


def test_hand_case_per_anchor_losses_at_temperature_one():
    e = math.e
    expected = torch.tensor([math.log(1 + e) - 1, math.log(1 + math.cosh(1)), math.log(1 + e) - 1,
                             1 + math.log(1 + 1 / e)])
    per_anchor = BalancedContrastiveLoss(1.0).per_anchor(HAND_ANCHORS, HAND_LABELS, HAND_PROTOTYPES)
    torch.testing.assert_close(per_anchor, expected)
    torch.testing.assert_close(per_anchor, torch.tensor([0.3132617, 0.9333762, 0.3132617, 1.3132617]))


@pytest.mark.parametrize(("temperature", "expected"), [(1.0, 0.7182903), (0.5, 0.9853732), (0.1, 4.8267700)])
def test_hand_case_values(temperature, expected):
    loss = BalancedContrastiveLoss(temperature)(HAND_ANCHORS, HAND_LABELS, HAND_PROTOTYPES)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def slow_bcl(anchors: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> list[float]:
    """§2.3 step 4 written anchor by anchor, member by member."""
    members = [(z, int(y)) for z, y in zip(anchors, labels)] + [(p, c) for c, p in enumerate(prototypes)]
    losses = []
    for a, (z_a, y_a) in enumerate(members[: len(anchors)]):
        contrast = [m for j, m in enumerate(members) if j != a]
        by_class: dict[int, list[float]] = {}
        for z_j, y_j in contrast:
            by_class.setdefault(y_j, []).append(float(z_a @ z_j) / temperature)
        log_d = math.log(sum(sum(math.exp(s) for s in sims) / len(sims) for sims in by_class.values()))
        positives = by_class[y_a]
        losses.append(-sum(s - log_d for s in positives) / len(positives))
    return losses


@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
def test_vectorised_loss_equals_the_slow_loop(temperature):
    # 2B = 8 anchors over 6 classes: classes 1 and 4 repeat, 0 and 5 are absent from the batch.
    labels = torch.tensor([1, 1, 2, 4, 1, 3, 4, 4])
    anchors, prototypes = unit_rows(8, 5, seed=0), unit_rows(6, 5, seed=1)
    per_anchor = BalancedContrastiveLoss(temperature).per_anchor(anchors, labels, prototypes)
    assert per_anchor.dtype == torch.float64
    expected = torch.tensor(slow_bcl(anchors, labels, prototypes, temperature), dtype=torch.float64)
    torch.testing.assert_close(per_anchor, expected, rtol=0, atol=1e-9)


def class_averaging_case() -> tuple[BalancedContrastiveLoss, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchor 0 of class 0; class 1 (a negative class for it) has two batch members, rows 1 and 2."""
    labels = torch.tensor([0, 1, 1, 2, 0])
    return BalancedContrastiveLoss(0.5), unit_rows(5, 3, seed=2), labels, unit_rows(3, 3, seed=3)


def test_duplicating_every_member_of_a_negative_class_leaves_the_anchor_loss_unchanged():
    loss, anchors, labels, prototypes = class_averaging_case()
    before = loss.per_anchor(anchors, labels, prototypes)[0]
    every_class_1_member = torch.cat([anchors[1:3], prototypes[1:2]])  # S_1(a): both views and the prototype p_1
    after = loss.per_anchor(torch.cat([anchors, every_class_1_member]), torch.cat([labels, torch.tensor([1, 1, 1])]),
                            prototypes)[0]
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)


def test_duplicating_one_member_of_a_negative_class_changes_the_anchor_loss():
    loss, anchors, labels, prototypes = class_averaging_case()
    before = loss.per_anchor(anchors, labels, prototypes)[0]
    after = loss.per_anchor(torch.cat([anchors, anchors[1:2]]), torch.cat([labels, torch.tensor([1])]), prototypes)[0]
    assert abs(float(after - before)) > 1e-3


def test_class_complement_puts_the_own_prototype_in_the_positives_and_every_class_in_the_denominator():
    """§4 item 4: all 2B = 4 anchors of class 0 at e_1, C = 3 prototypes p_0 = e_2, p_1 = −e_1, p_2 = −e_2."""
    temperature, m = 0.5, 4
    anchors = torch.tensor([[1.0, 0.0]] * m, dtype=torch.float64)
    prototypes = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    # P(a) = the 3 other anchors (s = 1/T) and p_0 (s = 0); D(a) has one averaged term per class 0, 1, 2.
    class_0 = ((m - 1) * math.exp(1 / temperature) + 1) / m
    log_d = math.log(class_0 + math.exp(-1 / temperature) + 1.0)
    expected = -((m - 1) / temperature / m - log_d)
    per_anchor = BalancedContrastiveLoss(temperature).per_anchor(anchors, torch.zeros(m, dtype=torch.long), prototypes)
    torch.testing.assert_close(per_anchor, torch.full((m,), expected, dtype=torch.float64))


def test_loss_is_float32_under_bf16_autocast():
    anchors = unit_rows(4, 3, seed=4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = BalancedContrastiveLoss(0.1)(anchors, torch.tensor([0, 1, 0, 1]), unit_rows(2, 3, seed=5).bfloat16())
    assert loss.dtype == torch.float32


# --- the method ------------------------------------------------------------------------------------------------------

CIFAR100_IF100 = img_num_per_cls(500, 100, 100)
CONFIGS = sorted((ROOT / "training" / "configs").glob("*_bcl_*.yaml"))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def with_heads(model: nn.Module, method: BCLMethod) -> nn.Module:
    model.train_heads.update(ltzoo.models.build_train_heads(method.heads_spec(model.num_features)))
    return model


@pytest.mark.parametrize("num_classes", [10, 100, 1000])
def test_prototypes_are_one_per_class(num_classes):
    method = BCLMethod(np.ones(num_classes, dtype=int), epochs=1)
    model = with_heads(timm.create_model("resnet32_cifar", num_classes=num_classes, classifier="cosine",
                                         cosine_scale=30.0), method)
    out = method.model_outputs(model, torch.randn(2, 3, 32, 32))
    assert out[PROTOTYPE_HEAD].shape == (num_classes, 128)
    assert out[CONTRASTIVE_HEAD].shape == (2, 128)


@pytest.mark.parametrize(("tau", "head", "tail"), [(1.0, 3.0770357, 7.6822059), (0.9, 3.1742031, 7.3188564)])
def test_classification_term_is_the_logit_adjusted_ce_with_the_methods_tau(tau, head, tail):
    loss = BCLMethod(CIFAR100_IF100, epochs=1, tau=tau).classification(torch.zeros(2, 100), torch.tensor([0, 99]))
    assert loss.item() == pytest.approx((head + tail) / 2, abs=1e-6)


@pytest.mark.parametrize(("num_features", "hidden", "feat_dim", "params"), [(64, 512, 128, 99_968),
                                                                            (2048, 2048, 1024, 6_298_624)])
def test_each_training_head_has_the_spec_parameter_count(num_features, hidden, feat_dim, params):
    spec = BCLMethod([3, 1], epochs=1, feat_dim=feat_dim, head_hidden=hidden).heads_spec(num_features)
    heads = ltzoo.models.build_train_heads(spec)
    assert set(heads) == {"head", "head_fc"}
    assert [sum(p.numel() for p in heads[name].parameters()) for name in ("head", "head_fc")] == [params, params]


def test_heads_stay_out_of_the_inference_state_dict_and_logits_are_bounded_by_the_scale():
    method = BCLMethod(np.ones(10, dtype=int), epochs=1)
    model = with_heads(ltzoo.create_model("resnet32_bcl_cifar10_lt"), method).eval()
    assert not any("head" in key.split(".")[0] for key in inference_state_dict(model))
    assert {key.split(".")[1] for key in model.state_dict() if key.startswith("train_heads.")} == {"head", "head_fc"}
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert logits.abs().max() <= 30.0 + 1e-4


def tiny_batch(method: BCLMethod) -> Batch:
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    loader = ArrayLoader(images, labels, 8, method.cifar_transform(MEAN, STD), seed=0)
    return next(iter(loader))


def test_a_training_step_trains_the_backbone_the_classifier_and_both_heads():
    method = BCLMethod([3, 2, 1, 2], epochs=1)
    torch.manual_seed(0)
    model = with_heads(ltzoo.create_model("resnet32_bcl_cifar10_lt", num_classes=4), method)
    loss, logs = method.training_step(model, tiny_batch(method), epoch=0)
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"loss", "ce", "bcl"}
    torch.testing.assert_close(loss, method.alpha * logs["ce"] + method.beta * logs["bcl"])
    for name in ("fc.weight", "train_heads.head.net.0.weight", "train_heads.head_fc.net.0.weight", "conv1.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_a_single_view_batch_is_a_clear_error():
    method = BCLMethod([3, 2], epochs=1)
    batch = Batch(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="three views"):
        method.training_step(nn.Identity(), batch, 0)


@pytest.mark.parametrize("cl_views", ["sim-sim", "sim-rand", "rand-rand"])
def test_image_views_give_three_normalised_crops(cl_views):
    transform = BCLMethod([3, 2], epochs=1, cl_views=cl_views).image_transform((0.485, 0.456, 0.406),
                                                                                (0.229, 0.224, 0.225), size=64)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    views = transform(image)
    assert len(views) == 3 and all(v.shape == (3, 64, 64) and v.dtype == torch.float32 for v in views)


def test_unknown_views_are_an_error():
    with pytest.raises(ValueError, match="cl_views"):
        BCLMethod([3, 2], epochs=1, cl_views="randstack-randstack")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_configs_load_and_build_the_method(path):
    cfg = load_config(path)
    num_classes = ltzoo.registry.get_pretrained_cfg(cfg.full_name)["num_classes"]
    options = {k: v for k, v in cfg.method.items() if k != "name"}
    assert type(build_method(cfg.method["name"], np.arange(num_classes) + 2, cfg.epochs, **options)) is BCLMethod


def test_there_is_a_config_for_every_bcl_entry():
    assert sorted(p.stem for p in CONFIGS) == sorted(ltzoo.list_models("*_bcl_*", include_tags=True))
