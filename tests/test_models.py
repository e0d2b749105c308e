"""The timm model interface of every zoo architecture, and the ResNet-32 / ImageNet-scale shapes of
docs/methods/baselines.md §3."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import ltzoo
from ltzoo import registry
from ltzoo.models import CifarResNet, NormedLinear, ProjectionMLP, inference_state_dict
from ltzoo.models.resnet_cifar import OptionAShortcut

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CIFAR_NAMES = ltzoo.list_models("resnet32_*")
# One ImageNet-scale entry per backbone (ResNet-152 with the 512-d embedding of the Places-LT baselines).
LARGE_NAMES = ["resnet50_ce_imagenet_lt", "resnext50_smcl_imagenet_lt", "resnet152_ce_places_lt"]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classes_of(name: str) -> int:
    return registry.get_pretrained_cfg(name)["num_classes"]


def classifier_kind(model: nn.Module) -> type:
    return type(model.get_classifier())


@pytest.fixture(scope="module")
def large_models() -> dict[str, nn.Module]:
    """Each ImageNet-scale backbone built once, in eval mode."""
    return {name: ltzoo.create_model(name).eval() for name in LARGE_NAMES}


@pytest.fixture(scope="module")
def large_input() -> torch.Tensor:
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def cifar_input(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_every_cifar_entry_is_a_resnet32() -> None:
    assert len(CIFAR_NAMES) == 26
    assert all(isinstance(ltzoo.create_model(name), CifarResNet) for name in CIFAR_NAMES)


# --- timm interface, every CIFAR entry -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_forward_gives_one_logit_per_class(name: str) -> None:
    model = ltzoo.create_model(name).eval()
    with torch.no_grad():
        assert model(cifar_input(3)).shape == (3, classes_of(name))


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_forward_is_head_of_features(name: str) -> None:
    model = ltzoo.create_model(name).eval()
    x = cifar_input()
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_head(model.forward_features(x)))


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_pre_logits_are_the_pooled_feature(name: str) -> None:
    model = ltzoo.create_model(name).eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(cifar_input()), pre_logits=True)
    assert feats.shape == (2, model.num_features) == (2, 64)


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_get_classifier_is_the_head_of_the_entry_kind(name: str) -> None:
    model = ltzoo.create_model(name)
    expected = NormedLinear if registry.get_entry(name).model_args["classifier"] == "cosine" else nn.Linear
    assert model.get_classifier() is model.fc
    assert classifier_kind(model) is expected


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_reset_classifier_changes_width_and_keeps_kind(name: str) -> None:
    model = ltzoo.create_model(name).eval()
    kind = classifier_kind(model)
    model.reset_classifier(7)
    assert classifier_kind(model) is kind
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(cifar_input()).shape == (2, 7)


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_create_model_num_classes(name: str) -> None:
    model = ltzoo.create_model(name, num_classes=5).eval()
    assert model.num_classes == 5
    assert model.pretrained_cfg["num_classes"] == classes_of(name)  # timm's meaning: the entry's weights
    with torch.no_grad():
        assert model(cifar_input()).shape == (2, 5)


# --- timm interface, one ImageNet-scale entry per backbone --------------------------------------------------


@pytest.mark.parametrize("name", LARGE_NAMES)
def test_large_forward_shape_and_decomposition(
    name: str, large_models: dict[str, nn.Module], large_input: torch.Tensor
) -> None:
    model = large_models[name]
    with torch.no_grad():
        features = model.forward_features(large_input)
        logits = model(large_input)
        assert torch.equal(logits, model.forward_head(features))
        pre_logits = model.forward_head(features, pre_logits=True)
    assert logits.shape == (1, classes_of(name))
    assert pre_logits.shape == (1, model.head_hidden_size)
    assert model.get_classifier() is model.fc


def test_resnet152_places_baseline_has_512d_embedding(large_models: dict[str, nn.Module]) -> None:
    model = large_models["resnet152_ce_places_lt"]
    assert (model.num_features, model.head_hidden_size) == (2048, 512)  # timm's meaning: the map's, the pooled's
    assert model.get_classifier().in_features == 512


@pytest.mark.parametrize("name", LARGE_NAMES)
def test_large_reset_classifier_changes_width_and_keeps_kind(
    name: str, large_models: dict[str, nn.Module], large_input: torch.Tensor
) -> None:
    model = copy.deepcopy(large_models[name])
    kind = classifier_kind(model)
    model.reset_classifier(11)
    assert classifier_kind(model) is kind
    with torch.no_grad():
        assert model(large_input).shape == (1, 11)


@pytest.mark.parametrize("name", LARGE_NAMES)
def test_large_create_model_num_classes(name: str, large_input: torch.Tensor) -> None:
    model = ltzoo.create_model(name, num_classes=3).eval()
    with torch.no_grad():
        assert model(large_input).shape == (1, 3)


# --- parameter counts and layers (docs/methods/baselines.md §3) -------------------------------------------------------


def test_resnet32_backbone_has_463504_parameters() -> None:
    model = ltzoo.create_model("resnet32_ce_cifar10_lt")
    assert n_params(model) - n_params(model.get_classifier()) == 463_504


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet32_ce_cifar10_lt", 464_154),
        ("resnet32_ce_cifar100_lt", 470_004),
        ("resnet32_ldam_drw_cifar10_lt", 464_144),
        ("resnet32_ldam_drw_cifar100_lt", 469_904),
    ],
)
def test_resnet32_parameter_count_with_head(name: str, expected: int) -> None:
    assert n_params(ltzoo.create_model(name)) == expected


def test_option_a_shortcuts_have_no_parameters() -> None:
    model = ltzoo.create_model("resnet32_ce_cifar10_lt")
    shortcuts = [m for m in model.modules() if isinstance(m, OptionAShortcut)]
    assert len(shortcuts) == 2  # 16→32 and 32→64
    assert all(n_params(s) == 0 for s in shortcuts)


def test_option_a_shortcut_subsamples_and_zero_pads_channels() -> None:
    x = torch.randn(1, 16, 8, 8)
    out = OptionAShortcut(32)(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_resnet32_cam_layer_is_64x8x8() -> None:
    model = ltzoo.create_model("resnet32_ce_cifar10_lt").eval()
    with torch.no_grad():
        assert model.forward_features(cifar_input(1)).shape == (1, 64, 8, 8)


def test_resnet50_has_25557032_parameters_with_1000_way_linear(large_models: dict[str, nn.Module]) -> None:
    model = large_models["resnet50_ce_imagenet_lt"]
    assert isinstance(model.get_classifier(), nn.Linear) and model.num_classes == 1000
    assert n_params(model) == 25_557_032


def test_resnext50_has_25028904_parameters_with_1000_way_linear(large_models: dict[str, nn.Module]) -> None:
    model = large_models["resnext50_smcl_imagenet_lt"]
    assert isinstance(model.get_classifier(), nn.Linear) and model.num_classes == 1000
    assert n_params(model) == 25_028_904


# --- NormedLinear -------------------------------------------------------------------------------------------


def test_normed_linear_columns_are_unit_norm_at_init() -> None:
    head = NormedLinear(64, 100)
    assert head.weight.shape == (64, 100)
    torch.testing.assert_close(head.weight.norm(dim=0), torch.ones(100))


def test_normed_linear_outputs_are_cosines_in_unit_range() -> None:
    head = NormedLinear(64, 10)
    x = 1000 * torch.randn(32, 64)
    with torch.no_grad():
        out = head(x)
    assert out.abs().max() <= 1 + 1e-6
    torch.testing.assert_close(out[0, 3], torch.cosine_similarity(x[0], head.weight[:, 3], dim=0))



def test_normed_linear_computes_fp32_cosines_under_bf16_autocast() -> None:
    head = NormedLinear(64, 10, scale=30.0)
    x = torch.randn(32, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x.bfloat16())
    assert out.dtype == torch.float32
    with torch.no_grad():
        expected = 30 * F.normalize(x.bfloat16().float(), dim=1) @ F.normalize(head.weight, dim=0)
    torch.testing.assert_close(out, expected)

# --- timm registration and training-only heads -----------------------------------------------------------------


def test_timm_builds_resnet32_cifar_after_importing_ltzoo() -> None:
    model = timm.create_model("resnet32_cifar")
    assert isinstance(model, CifarResNet)
    assert model.num_classes == 10


def test_training_heads_never_run_in_forward() -> None:
    model = ltzoo.create_model("resnet32_smcl_cifar10_lt").eval()
    x = cifar_input()
    with torch.no_grad():
        before = model(x)
    model.train_heads["proj"] = ProjectionMLP(64, 64, 128)
    calls = []
    model.train_heads["proj"].register_forward_hook(lambda *args: calls.append(args))
    with torch.no_grad():
        after = model(x)
    assert calls == []
    assert torch.equal(before, after)


def test_inference_state_dict_excludes_training_heads() -> None:
    model = ltzoo.create_model("resnet32_smcl_cifar10_lt")
    model.train_heads["proj"] = ProjectionMLP(64, 64, 128)
    assert any(k.startswith("train_heads.") for k in model.state_dict())
    state = inference_state_dict(model)
    assert set(state) == {k for k in model.state_dict() if not k.startswith("train_heads.")}
    timm.create_model("resnet32_cifar").load_state_dict(state, strict=True)
