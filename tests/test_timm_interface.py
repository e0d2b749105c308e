"""timm's model interface on every ltzoo architecture: features, intermediates, pooling, dropout, checkpointing,
param groups, and released weights loading bitwise-identically into the modules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

import ltzoo
from ltzoo.models import NormedLinear

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
# (architecture, input size, feature channels) — the ImageNet-scale ones at 64 px to stay fast
ARCHS = [
    ("resnet32_cifar", 32, [16, 16, 32, 64]),
    ("lt_resnet50", 64, [64, 256, 512, 1024, 2048]),
    ("lt_resnext50_32x4d", 64, [64, 256, 512, 1024, 2048]),
    ("lt_resnet152", 64, [64, 256, 512, 1024, 2048]),
]
POOLS = {"avg": 1, "max": 1, "avgmax": 1, "catavgmax": 2}


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch, size, channels", ARCHS)
def test_features_only_gives_one_map_per_level_as_feature_info_says(arch: str, size: int, channels: list[int]) -> None:
    model = timm.create_model(arch, features_only=True).eval()
    assert model.feature_info.channels() == channels
    with torch.no_grad():
        maps = model(images(size, 1))
    assert [m.shape[1] for m in maps] == channels
    assert [size // m.shape[-1] for m in maps] == model.feature_info.reduction()


@pytest.mark.parametrize("arch, size, channels", ARCHS)
def test_forward_intermediates_ends_with_forward_features(arch: str, size: int, channels: list[int]) -> None:
    model = timm.create_model(arch).eval()
    x = images(size, 1)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [m.shape[1] for m in maps] == channels
    assert [m.shape[1] for m in last_two] == channels[-2:]


@pytest.mark.parametrize("arch, size, channels", ARCHS)
def test_the_cfgs_classifier_names_the_module_get_classifier_returns(arch: str, size: int, channels: list[int]) -> None:
    """The classifier's name is declared once (ltzoo.registry.ARCHS) and timm resets and adapts the head by it."""
    model = timm.create_model(arch, num_classes=3)
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is model.get_classifier()


@pytest.mark.parametrize("pool, mult", POOLS.items())
@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_global_pool_sets_the_head_width(pool: str, mult: int, classifier: str) -> None:
    model = timm.create_model("resnet32_cifar", global_pool=pool, classifier=classifier, num_classes=7).eval()
    assert model.head_hidden_size == 64 * mult
    with torch.no_grad():
        assert model.forward_head(model.forward_features(images(32)), pre_logits=True).shape == (2, 64 * mult)
        assert model(images(32)).shape == (2, 7)
    if classifier == "cosine":
        assert isinstance(model.fc, NormedLinear) and model.fc.weight.shape == (64 * mult, 7)


def test_no_pool_and_no_classifier_give_the_feature_map() -> None:
    model = timm.create_model("lt_resnet50", num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert model(images(64, 1)).shape == (1, 2048, 2, 2)


@pytest.mark.parametrize("name", ["resnet32_ce_cifar10_lt", "resnet32_ldam_drw_cifar10_lt", "resnet152_ce_places_lt"])
def test_reset_classifier_with_pool_keeps_the_head_kind(name: str) -> None:
    model = ltzoo.create_model(name).eval()
    kind = type(model.get_classifier())
    model.reset_classifier(5, "catavgmax")
    assert type(model.get_classifier()) is kind and model.global_pool.pool_type == "catavgmax"
    size = 32 if "cifar" in name else 64
    with torch.no_grad():
        assert model(images(size)).shape == (2, 5)
    model.reset_classifier(0)
    assert model.global_pool.pool_type == "catavgmax"  # None keeps the pool


def test_drop_rate_drops_only_in_training() -> None:
    model = timm.create_model("resnet32_cifar", drop_rate=0.5)
    x = images(32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("arch", ["resnet32_cifar", "lt_resnet50"])
def test_drop_path_rate_reaches_the_residual_blocks(arch: str) -> None:
    model = timm.create_model(arch, drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.2)


@pytest.mark.parametrize("arch, size", [("resnet32_cifar", 32), ("lt_resnet50", 64)])
def test_grad_checkpointing_gives_the_same_outputs_and_gradients(arch: str, size: int) -> None:
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3).train()
    x = images(size)

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        out = model(x)
        out.sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.set_grad_checkpointing()
    checkpointed = grads()
    torch.testing.assert_close(checkpointed[0], plain[0])
    for a, b in zip(checkpointed[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch, stages", [("resnet32_cifar", 3), ("lt_resnet50", 4)])
def test_group_matcher_splits_stem_and_stages(arch: str, stages: int) -> None:
    from timm.models import group_parameters

    model = timm.create_model(arch)
    groups = group_parameters(model, model.group_matcher(coarse=True))
    names = {n for n, _ in model.named_parameters()}
    assert sum(len(v) for v in groups.values()) == len(names)
    assert len(groups) == 1 + stages + 1  # stem, each stage, the head
    assert all(re.match(r"^(backbone\.)?(conv1|bn1)", n) for n in groups[0])
    assert model.no_weight_decay() == set()


@pytest.mark.parametrize("release", sorted(p.name for p in (REPO / "releases").iterdir() if p.is_dir()))
def test_released_weights_load_bitwise_into_the_modules(release: str) -> None:
    file = REPO / "releases" / release / "model.safetensors"
    model = ltzoo.create_model(release, checkpoint_path=file)
    saved = load_file(str(file))
    state = {k: v for k, v in model.state_dict().items()}
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)


@pytest.mark.parametrize("arch, size", [("resnet32_cifar", 32), ("lt_resnet50", 64)])
def test_a_features_only_model_checkpoints_with_the_same_gradients(arch: str, size: int) -> None:
    """Detection and segmentation pipelines call set_grad_checkpointing on a features_only backbone."""
    x = images(size)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = timm.create_model(arch, features_only=True).train()
        model.set_grad_checkpointing(checkpointing)
        assert model.model.grad_checkpointing is checkpointing
        sum(f.pow(2).mean() for f in model(x)).backward()
        return [p.grad for p in model.parameters() if p.grad is not None]

    plain, checkpointed = grads(False), grads(True)
    assert len(plain) == len(checkpointed) > 0
    for a, b in zip(checkpointed, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch, size", [("resnet32_cifar", 32), ("lt_resnet50", 64)])
def test_after_pruning_the_last_level_a_new_head_takes_the_width_of_the_last_kept_one(arch: str, size: int) -> None:
    model = timm.create_model(arch, num_classes=0).eval()
    last_kept = len(model.feature_info) - 2
    model.prune_intermediate_layers([last_kept], prune_norm=True, prune_head=False)
    model.reset_classifier(7, "avg")
    assert model.head_hidden_size == model.feature_info[last_kept]["num_chs"]
    with torch.no_grad():
        assert model(images(size)).shape == (2, 7)


@pytest.mark.parametrize("arch, size", [("resnet32_cifar", 32), ("lt_resnet50", 64)])
def test_a_features_only_model_of_the_first_levels_trains_with_grad_checkpointing(arch: str, size: int) -> None:
    model = timm.create_model(arch, features_only=True, out_indices=(0, 1)).train()
    model.set_grad_checkpointing()
    maps = model(images(size))
    sum(m.sum() for m in maps).backward()
    assert [m.shape[1] for m in maps] == model.feature_info.channels()


@pytest.mark.parametrize("classifier", ["linear", "cosine"])
@pytest.mark.parametrize("arch, size, channels", ARCHS)
def test_init_weights_gives_a_model_built_on_the_meta_device_finite_weights_and_statistics(
        arch: str, size: int, channels: list[int], classifier: str) -> None:
    """timm's `test_model_init_weights_after_to_empty`: storage poisoned with NaN, so a missed reset cannot pass."""
    model = timm.create_model(arch, device="meta", num_classes=5, classifier=classifier).to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    model.init_weights()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        assert torch.isfinite(tensor).all(), name
    with torch.no_grad():
        assert torch.isfinite(model(images(size, 1))).all()
