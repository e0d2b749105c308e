"""SMCL (docs/methods/smcl.md §3, §6): the contrastive set and its labels, the projection head, the regression to CMO,
and one training step under every switch of §3.4 on a tiny ResNet-32."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ltzoo
from ltzoo import registry
from ltzoo.augment.views import cifar_train_transform
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data import ArrayLoader
from ltzoo.losses import SupConLoss
from ltzoo.methods import CMO, SMCL, TrainSet, build_method
from ltzoo.methods.smcl import contrast_labels, mixed_positive_mask
from ltzoo.models import build_train_heads

COUNTS = [20, 12, 8, 6, 5, 4, 3, 3, 2, 1]  # 64 images of 10 classes
BATCH = 8
EPOCHS = 10
OPEN_EPOCH = 4  # 3 < 4 < EPOCHS − 3

LABELS = torch.tensor([0, 0, 1, 2])
MINOR_LABELS = torch.tensor([7, 9, 7, 0])


def tiny_train_set() -> TrainSet:
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    images = rng.randint(0, 256, (len(labels), 32, 32, 3)).astype(np.uint8)
    return TrainSet(labels, BATCH, 0, CIFAR_MEAN, CIFAR_STD, images=images)


def main_loader(train_set: TrainSet) -> ArrayLoader:
    return ArrayLoader(train_set.images, train_set.labels, BATCH, cifar_train_transform(CIFAR_MEAN, CIFAR_STD),
                       seed=train_set.seed)


def model_for(method, classifier: str = "linear") -> torch.nn.Module:
    torch.manual_seed(0)
    model = ltzoo.create_model("resnet32_smcl_cifar10_lt", classifier=classifier)
    spec = method.heads_spec(model.num_features)
    if spec:
        model.train_heads.update(build_train_heads(spec))
    return model.train()


def test_smcl_is_registered_with_its_defaults():
    method = build_method("smcl", COUNTS, EPOCHS)
    assert registry.METHODS["smcl"].cls is SMCL and isinstance(method, SMCL)
    assert method.engine.mixing.minor_sampler == "effective_number" and method.engine.mixing.region == "saliency_box"
    assert method.engine.mixing.saliency == "cam" and method.engine.mixing.box_scope == "per_image"
    assert method.drw is not None and method.supcon.temperature == 0.07 and method.w_msc == 1.0


def test_masked_and_minority_images_carry_the_minor_label():
    assert contrast_labels(LABELS, MINOR_LABELS, with_original=False).tolist() == [7, 9, 7, 0, 7, 9, 7, 0]


def test_the_three_batch_set_adds_the_originals_with_their_own_labels():
    assert contrast_labels(LABELS, MINOR_LABELS, with_original=True).tolist() == [7, 9, 7, 0, 0, 0, 1, 2, 7, 9, 7, 0]


@pytest.mark.parametrize("lam", [0.0, 0.4, 0.99])
def test_each_masked_anchor_has_its_minority_image_as_a_positive(lam):
    contrast = contrast_labels(LABELS, MINOR_LABELS, with_original=False)
    hard = contrast.view(-1, 1) == contrast.view(1, -1)
    mixed = mixed_positive_mask(contrast, LABELS, MINOR_LABELS, torch.full((4,), lam))
    for i in range(4):
        assert hard[i, i + 4] and mixed[i, i + 4] > 0


def test_mixed_labels_with_lambda_zero_equal_hard_minor_labels():
    contrast = contrast_labels(LABELS, MINOR_LABELS, with_original=True)
    z = F.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    mask = mixed_positive_mask(contrast, LABELS, MINOR_LABELS, torch.zeros(4))
    assert torch.equal(mask, (contrast.view(-1, 1) == contrast.view(1, -1)).float())
    torch.testing.assert_close(SupConLoss()(z, mask=mask), SupConLoss()(z, labels=contrast))


def test_mixed_labels_weigh_background_and_minor_class_positives_by_lambda():
    contrast = contrast_labels(LABELS, MINOR_LABELS, with_original=True)
    lam = torch.tensor([0.25, 0.5, 0.75, 1.0])
    mask = mixed_positive_mask(contrast, LABELS, MINOR_LABELS, lam)
    # anchor 0 (y = 0, y' = 7) over c = [7 9 7 0 | 0 0 1 2 | 7 9 7 0]: class 0 weighs λ̂, class 7 weighs 1 − λ̂
    assert mask[0, [3, 4, 5, 11]].tolist() == [0.25] * 4
    assert mask[0, [2, 8, 10]].tolist() == [0.75] * 3
    assert mask[0, [1, 6, 7, 9]].tolist() == [0.0] * 4


def test_anchors_other_than_the_masked_images_keep_label_equality():
    contrast = contrast_labels(LABELS, MINOR_LABELS, with_original=True)
    mask = mixed_positive_mask(contrast, LABELS, MINOR_LABELS, torch.full((4,), 0.3))
    assert torch.equal(mask[4:], (contrast[4:].view(-1, 1) == contrast.view(1, -1)).float())


@pytest.mark.parametrize(("proj", "layer"), [("mlp", "ProjectionMLP"), ("linear", "Linear")])
def test_the_projection_head_is_a_training_only_head(proj, layer):
    spec = SMCL(COUNTS, EPOCHS, proj=proj).heads_spec(64)
    head = build_train_heads(spec)["proj"]
    assert type(head).__name__ == layer and head(torch.zeros(2, 64)).shape == (2, 128)


def test_the_mlp_projection_is_d_to_d_to_128():
    assert SMCL(COUNTS, EPOCHS).heads_spec(2048) == {
        "proj": {"type": "mlp", "in_features": 2048, "hidden": 2048, "out_features": 128}}


def test_without_the_contrastive_term_there_is_no_head():
    assert SMCL(COUNTS, EPOCHS, w_msc=0.0).heads_spec(64) is None


def _run(method, steps_per_epoch: int, epochs: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """A fixed-seed mini-run from a fixed init: (losses, augmented flags) of every step."""
    train_set = tiny_train_set()
    model = model_for(method)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = main_loader(train_set)
    method.bind_data(train_set)
    losses, augmented = [], []
    for epoch in epochs:
        loader.set_epoch(epoch)
        method.on_epoch_start(epoch)
        for _, batch in zip(range(steps_per_epoch), loader):
            loss, logs = method.training_step(model, batch, epoch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            augmented.append(logs["augmented"])
    return losses, augmented


def test_the_regression_configuration_equals_cmo_loss_for_loss():
    smcl = SMCL(COUNTS, EPOCHS, saliency="random", box_scope="per_batch", minor_sampler="class_balanced", fill="paste",
                w_msc=0.0, drw_start=5)
    cmo = CMO(COUNTS, EPOCHS, drw_start=5)
    smcl_losses, smcl_augmented = _run(smcl, 3, (4, 5))
    cmo_losses, cmo_augmented = _run(cmo, 3, (4, 5))
    assert smcl_losses == cmo_losses
    assert smcl_augmented == cmo_augmented and 0 < sum(cmo_augmented) < len(cmo_augmented)


def test_a_closed_gate_trains_on_the_plain_batch_without_contrast():
    method = SMCL(COUNTS, EPOCHS, p_aug=0.0)
    model = model_for(method)
    train_set = tiny_train_set()
    method.bind_data(train_set)
    method.on_epoch_start(OPEN_EPOCH)
    loader = main_loader(train_set)
    loader.set_epoch(OPEN_EPOCH)
    batch = next(iter(loader))
    loss, logs = method.training_step(model, batch, OPEN_EPOCH)
    assert logs["augmented"] == 0.0 and logs["l_msc"] == 0.0
    torch.testing.assert_close(loss, method.loss(model(batch.images), batch.labels))


# every switch of docs/methods/smcl.md §3.4, one value at a time away from the defaults
SWITCHES = [
    {},
    {"minor_sampler": "class_balanced"},
    {"effnum_beta": 0.99},
    {"saliency": "opencv_finegrained"},
    {"saliency": "gradcam"},
    {"saliency": "random"},
    {"cam_target": "pred"},
    {"box_scope": "per_batch"},
    {"fill": "zero"},
    {"contrast_set": "masked+original+minor"},
    {"msc_labels": "mixed"},
    {"msc_always": True, "p_aug": 0.0},
    {"w_msc": 0.0},
    {"w_msc": 0.5, "tau": 0.1},
    {"proj": "linear"},
    {"box_beta": 0.5, "aug_start": 0, "aug_end": 0},
    {"base_loss": "ce"},
    {"base_loss": "ldam_drw"},
    {"base_loss": "bs"},
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_every_switch_runs_one_training_step(switch):
    options = {"p_aug": 1.0, "drw_start": 0, **switch}  # the gate forced open, DRW weights on
    method = SMCL(COUNTS, EPOCHS, **options)
    model = model_for(method, "cosine" if options.get("base_loss") == "ldam_drw" else "linear")
    train_set = tiny_train_set()
    method.bind_data(train_set)
    method.on_epoch_start(OPEN_EPOCH)
    loader = main_loader(train_set)
    loader.set_epoch(OPEN_EPOCH)
    loss, logs = method.training_step(model, next(iter(loader)), OPEN_EPOCH)
    loss.backward()
    assert torch.isfinite(loss)
    assert logs["augmented"] == (0.0 if options["p_aug"] == 0.0 else 1.0)
    if method.contrastive:
        assert logs["l_msc"] > 0
        assert all(p.grad is not None for p in model.train_heads.parameters())
    assert model.conv1.weight.grad is not None


@pytest.mark.parametrize(("option", "value"), [("saliency", "sift"), ("contrast_set", "all"),
                                               ("msc_labels", "soft"), ("proj", "mlp3"), ("base_loss", "focal")])
def test_unknown_switch_values_are_named_errors(option, value):
    with pytest.raises(ValueError, match=option):
        SMCL(COUNTS, EPOCHS, **{option: value})
