"""create_model with weights: Hub round trips (ltzoo and plain timm), registry names, heads, class counts, files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from conftest import ServedHub
from torch import nn

import ltzoo
from ltzoo.hub import WeightsNotAvailableError, sha256_file
from ltzoo.models import NormedLinear

# Every test sees an empty releases table unless it writes one, so published weights never change the outcome.
pytestmark = pytest.mark.usefixtures("one_torch_thread", "releases_table")

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(("fc.", "train_heads."))}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ltzoo_loads_a_hub_release_exactly(local_hub: ServedHub, kind: str) -> None:
    name = getattr(local_hub, kind)
    model = ltzoo.create_model(local_hub.hf_hub(name), pretrained=True)
    assert torch.equal(logits(model), logits(local_hub.models[name]))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_plain_timm_loads_a_hub_release_exactly(local_hub: ServedHub, kind: str) -> None:
    name = getattr(local_hub, kind)
    model = timm.create_model(local_hub.hf_hub(name), pretrained=True)
    assert type(model.get_classifier()) is type(local_hub.models[name].get_classifier())
    assert torch.equal(logits(model), logits(local_hub.models[name]))


def test_hub_release_carries_its_pretrained_cfg(local_hub: ServedHub) -> None:
    model = ltzoo.create_model(local_hub.hf_hub(local_hub.linear), pretrained=True)
    cfg = model.pretrained_cfg
    assert cfg["hf_hub_id"] == local_hub.repo_id(local_hub.linear)
    assert cfg["num_classes"] == 10 and tuple(cfg["input_size"]) == (3, 32, 32)
    assert cfg["sha256"] == sha256_file(local_hub.weights(local_hub.linear))


def test_registry_name_with_recorded_sha_loads_from_the_hub(
    local_hub: ServedHub, releases_table: Callable[..., Path]
) -> None:
    releases_table({local_hub.linear: {"sha256": sha256_file(local_hub.weights(local_hub.linear))}})
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", pretrained=True)  # the default tag, if100
    assert torch.equal(logits(model), logits(local_hub.models[local_hub.linear]))


def test_with_heads_restores_the_training_heads_exactly(local_hub: ServedHub) -> None:
    name = local_hub.with_heads
    model = ltzoo.create_model(local_hub.hf_hub(name), pretrained=True, with_heads=True)
    assert_same_tensors(model.train_heads.state_dict(), local_hub.models[name].train_heads.state_dict())
    assert torch.equal(logits(model), logits(local_hub.models[name]))


def test_with_heads_by_registry_name_takes_the_heads_of_the_same_hub_release(
    local_hub: ServedHub, releases_table: Callable[..., Path]
) -> None:
    name = local_hub.with_heads
    releases_table({name: {"sha256": sha256_file(local_hub.weights(name))}})
    model = ltzoo.create_model(name, pretrained=True, with_heads=True)
    assert_same_tensors(model.train_heads.state_dict(), local_hub.models[name].train_heads.state_dict())


def test_with_heads_from_a_local_release_folder(local_hub: ServedHub) -> None:
    name = local_hub.with_heads
    model = ltzoo.create_model("resnet32_smcl_cifar10_lt", checkpoint_path=local_hub.weights(name), with_heads=True)
    assert_same_tensors(model.train_heads.state_dict(), local_hub.models[name].train_heads.state_dict())


def test_with_heads_on_bare_local_weights_is_refused_rather_than_taking_the_hubs_heads(
    local_hub: ServedHub, tmp_path: Path
) -> None:
    bare = tmp_path / "model.safetensors"
    shutil.copy(local_hub.weights(local_hub.with_heads), bare)
    with pytest.raises(WeightsNotAvailableError, match="heads.safetensors and config.json must sit beside it"):
        ltzoo.create_model("resnet32_smcl_cifar10_lt", checkpoint_path=bare, with_heads=True)


def test_without_with_heads_no_training_heads_are_attached(local_hub: ServedHub) -> None:
    model = ltzoo.create_model(local_hub.hf_hub(local_hub.with_heads), pretrained=True)
    assert len(model.train_heads) == 0


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_new_num_classes_keeps_the_backbone_and_reinitialises_the_head(
    local_hub: ServedHub, kind: str
) -> None:
    name = getattr(local_hub, kind)
    original = local_hub.models[name]
    model = ltzoo.create_model(local_hub.hf_hub(name), pretrained=True, num_classes=7)
    assert model.num_classes == 7
    assert model.pretrained_cfg["num_classes"] == 10  # timm's meaning: the cfg describes the loaded weights
    assert type(model.get_classifier()) is type(original.get_classifier())
    assert logits(model).shape == (4, 7)
    assert_same_tensors(backbone_state(model), backbone_state(original))


def test_cosine_head_for_new_classes_is_unit_norm(local_hub: ServedHub) -> None:
    model = ltzoo.create_model(local_hub.hf_hub(local_hub.cosine), pretrained=True, num_classes=7)
    assert isinstance(model.fc, NormedLinear)
    torch.testing.assert_close(model.fc.weight.norm(dim=0), torch.ones(7))


def test_checkpoint_path_loads_a_local_file(local_hub: ServedHub) -> None:
    model = ltzoo.create_model("resnet32_ce_cifar10_lt", checkpoint_path=local_hub.weights(local_hub.linear))
    assert torch.equal(logits(model), logits(local_hub.models[local_hub.linear]))


def test_overlay_file_beats_checkpoint_path(local_hub: ServedHub) -> None:
    # Both files fit a 10-class linear ResNet-32; the overlay's (the SMCL release) must win.
    model = ltzoo.create_model(
        "resnet32_ce_cifar10_lt",
        pretrained=True,
        checkpoint_path=local_hub.weights(local_hub.linear),
        pretrained_cfg_overlay=dict(file=str(local_hub.weights(local_hub.with_heads))),
    )
    assert torch.equal(logits(model), logits(local_hub.models[local_hub.with_heads]))
    assert not torch.equal(logits(model), logits(local_hub.models[local_hub.linear]))


def test_overlay_file_loads_without_a_recorded_sha(local_hub: ServedHub) -> None:
    model = ltzoo.create_model(
        "resnet32_ce_cifar10_lt", pretrained=True,
        pretrained_cfg_overlay=dict(file=str(local_hub.weights(local_hub.linear))),
    )
    assert torch.equal(logits(model), logits(local_hub.models[local_hub.linear]))


def test_checkpoint_for_other_class_count_loads_with_num_classes(local_hub: ServedHub) -> None:
    # A 10-class checkpoint into the 100-class entry, with num_classes=10: the checkpoint is used as is.
    model = ltzoo.create_model(
        "resnet32_ce_cifar100_lt", checkpoint_path=local_hub.weights(local_hub.linear), num_classes=10
    )
    assert torch.equal(logits(model), logits(local_hub.models[local_hub.linear]))
