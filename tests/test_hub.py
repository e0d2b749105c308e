"""Release folders, serving them through the real huggingface_hub client, and every error a user can meet loading.

Each error is a typed ltzoo error whose message says what went wrong and what to do, with no chained torch,
safetensors or huggingface_hub traceback shown beneath it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from conftest import HEADS_SPEC, ServedHub
from huggingface_hub import constants
from safetensors.torch import load_file

import ltzoo
from ltzoo import hub
from ltzoo.hub import (
    ClassCountMismatchError,
    CorruptWeightsError,
    HubUnreachableError,
    WeightsNotAvailableError,
    sha256_file,
)
from ltzoo.models import inference_state_dict
from ltzoo.registry import UnknownModelError

# Every test sees an empty releases table unless it writes one, so published weights never change the outcome.
pytestmark = pytest.mark.usefixtures("one_torch_thread", "releases_table")

WRONG_SHA = "0" * 64


def assert_clean(err: pytest.ExceptionInfo) -> None:
    """The error is shown alone: no chained library exception (`raise ... from None` or raised directly)."""
    exc = err.value
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --- release folder layout -----------------------------------------------------------------------------------


def test_release_folder_holds_weights_and_config(local_hub: ServedHub) -> None:
    names = {p.name for p in local_hub.folder(local_hub.linear).iterdir()}
    assert names == {"model.safetensors", "config.json"}


def test_release_weights_are_exactly_the_inference_state_dict(local_hub: ServedHub) -> None:
    name = local_hub.with_heads
    saved = load_file(str(local_hub.weights(name)))
    expected = inference_state_dict(local_hub.models[name])
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in saved)


def test_plain_timm_loads_release_weights_strictly(local_hub: ServedHub) -> None:
    model = timm.create_model("resnet32_cifar", num_classes=10, classifier="cosine")
    model.load_state_dict(load_file(str(local_hub.weights(local_hub.cosine))), strict=True)


def test_release_config_has_timm_keys_and_ltzoo_block(local_hub: ServedHub) -> None:
    config = json.loads((local_hub.folder(local_hub.cosine) / "config.json").read_text())
    assert {"architecture", "num_classes", "num_features", "pretrained_cfg", "model_args", "ltzoo"} <= config.keys()
    assert (config["architecture"], config["num_classes"], config["num_features"]) == ("resnet32_cifar", 10, 64)
    assert config["model_args"] == {"classifier": "cosine", "cosine_scale": 30.0}
    assert config["pretrained_cfg"]["num_classes"] == 10
    assert (config["ltzoo"]["name"], config["ltzoo"]["tag"]) == ("resnet32_ldam_drw_cifar10_lt", "if100")
    assert config["ltzoo"]["files"] == {"model.safetensors": sha256_file(local_hub.weights(local_hub.cosine))}


def test_release_with_training_heads_records_them(local_hub: ServedHub) -> None:
    folder = local_hub.folder(local_hub.with_heads)
    config = json.loads((folder / "config.json").read_text())
    assert config["ltzoo"]["heads"] == HEADS_SPEC
    assert config["ltzoo"]["files"]["heads.safetensors"] == sha256_file(folder / "heads.safetensors")
    assert set(load_file(str(folder / "heads.safetensors"))) == {
        "proj.net.0.weight", "proj.net.0.bias", "proj.net.2.weight", "proj.net.2.bias",
    }


def test_hub_serves_the_committed_file_bytes(local_hub: ServedHub) -> None:
    downloaded = hub.download(local_hub.repo_id(local_hub.linear), hub.WEIGHTS_NAME)
    assert downloaded.is_relative_to(local_hub.cache_dir)
    assert sha256_file(downloaded) == sha256_file(local_hub.weights(local_hub.linear))


# --- errors --------------------------------------------------------------------------------------------------


def test_error_misspelt_name_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError) as err:
        ltzoo.create_model("resnet32_ldam_cifar10_lt")
    assert "Unknown ltzoo model 'resnet32_ldam_cifar10_lt'" in str(err.value)
    assert "resnet32_ldam_drw_cifar10_lt" in str(err.value)
    assert_clean(err)


def test_error_no_published_weights_names_the_recipe_and_where_its_command_is_explained() -> None:
    with pytest.raises(WeightsNotAvailableError) as err:
        ltzoo.create_model("resnet32_smcl_cifar100_lt.if50", pretrained=True)
    message = str(err.value)
    assert "resnet32_smcl_cifar100_lt.if50 has no published weights yet: rebuild them from the recipe " \
           "resnet32_smcl_cifar100_lt.if50 (the command that trains a recipe: ltzoo's README, \"Rebuild any " \
           "checkpoint\")" in message
    assert_clean(err)


def test_error_no_published_weights_of_a_two_stage_recipe_names_both_stages_in_order() -> None:
    with pytest.raises(WeightsNotAvailableError) as err:
        ltzoo.create_model("resnet32_dscl_cifar100_lt.if10", pretrained=True)
    assert "the recipe resnet32_dscl_cifar100_lt.if10 then resnet32_dscl_cifar100_lt.if10.probe (" in str(err.value)


def test_error_no_published_weights_for_default_tag_names_its_recipe() -> None:
    with pytest.raises(WeightsNotAvailableError, match=r"the recipe resnext50_smcl_imagenet_lt\.e100 \("):
        ltzoo.create_model("resnext50_smcl_imagenet_lt", pretrained=True)


@pytest.mark.parametrize("keep_bytes", [4, 100, -1000], ids=["header-length", "header", "tensor-data"])
def test_error_truncated_weights_name_the_file(local_hub: ServedHub, tmp_path: Path, keep_bytes: int) -> None:
    data = local_hub.weights(local_hub.linear).read_bytes()
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(data[:keep_bytes])
    with pytest.raises(CorruptWeightsError) as err:
        ltzoo.create_model("resnet32_ce_cifar10_lt", checkpoint_path=broken)
    assert str(broken) in str(err.value)
    assert "truncated or corrupt" in str(err.value)
    assert_clean(err)


def test_error_sha256_mismatch_names_file_both_hashes_and_the_cache_to_clear(
    local_hub: ServedHub, releases_table: Callable[..., Path]
) -> None:
    releases_table({local_hub.linear: {"sha256": WRONG_SHA}})
    with pytest.raises(CorruptWeightsError) as err:
        ltzoo.create_model(local_hub.linear, pretrained=True)
    message = str(err.value)
    cached_repo = local_hub.cache_dir / f"models--{local_hub.namespace}--{local_hub.linear}"
    assert str(cached_repo) in message and "model.safetensors" in message
    assert f"expected {WRONG_SHA}" in message
    assert f"got {sha256_file(local_hub.weights(local_hub.linear))}" in message
    assert f"rm -rf {cached_repo}" in message
    assert_clean(err)


def test_error_class_count_mismatch_gives_both_counts(local_hub: ServedHub) -> None:
    with pytest.raises(ClassCountMismatchError) as err:
        ltzoo.create_model("resnet32_ce_cifar100_lt", checkpoint_path=local_hub.weights(local_hub.linear))
    message = str(err.value)
    assert "10-class classifier" in message and "100 classes" in message
    assert "num_classes=10" in message
    assert_clean(err)


def test_error_cosine_checkpoint_for_linear_entry_names_the_file(local_hub: ServedHub) -> None:
    with pytest.raises(CorruptWeightsError) as err:
        ltzoo.create_model("resnet32_ce_cifar10_lt", checkpoint_path=local_hub.weights(local_hub.cosine))
    assert f"{local_hub.weights(local_hub.cosine)} does not fit CifarResNet" in str(err.value)
    assert_clean(err)


def test_error_missing_checkpoint_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(WeightsNotAvailableError, match=f"{missing} does not exist") as err:
        ltzoo.create_model("resnet32_ce_cifar10_lt", checkpoint_path=missing)
    assert_clean(err)


def test_error_unreachable_hub_names_endpoint_and_offline_flag(
    local_hub: ServedHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubUnreachableError) as err:
        ltzoo.create_model(local_hub.hf_hub(local_hub.linear), pretrained=True)
    message = str(err.value)
    assert f"HF_ENDPOINT={local_hub.endpoint}" in message
    assert "HF_HUB_OFFLINE=1" in message and "nothing is cached" in message
    assert_clean(err)


def test_offline_mode_is_answered_from_the_cache(local_hub: ServedHub, monkeypatch: pytest.MonkeyPatch) -> None:
    online = ltzoo.create_model(local_hub.hf_hub(local_hub.cosine), pretrained=True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = ltzoo.create_model(local_hub.hf_hub(local_hub.cosine), pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(online.state_dict().values(), offline.state_dict().values()))


def test_error_repo_not_on_the_hub(local_hub: ServedHub) -> None:
    repo = local_hub.repo_id("resnet32_bsce_cifar10_lt.if100")
    with pytest.raises(WeightsNotAvailableError) as err:
        ltzoo.create_model(f"hf-hub:{repo}", pretrained=True)
    message = str(err.value)
    assert f"the Hub at {local_hub.endpoint} has no file config.json in repo {repo}" in message
    assert_clean(err)


def test_error_released_entry_missing_from_the_hub(
    local_hub: ServedHub, releases_table: Callable[..., Path]
) -> None:
    releases_table({"resnet32_bsce_cifar10_lt.if100": {"sha256": WRONG_SHA}})
    with pytest.raises(WeightsNotAvailableError, match="has no file model.safetensors in repo") as err:
        ltzoo.create_model("resnet32_bsce_cifar10_lt", pretrained=True)
    assert_clean(err)


def test_error_with_heads_on_release_without_heads(local_hub: ServedHub) -> None:
    with pytest.raises(WeightsNotAvailableError, match="without training-only heads") as err:
        ltzoo.create_model(local_hub.hf_hub(local_hub.linear), pretrained=True, with_heads=True)
    assert_clean(err)
