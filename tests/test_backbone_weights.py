"""A pretrained backbone (Places-LT's ImageNet ResNet-152) comes from timm's Hub repo as safetensors and is checked
by sha256 before a byte is read: against the recipe's pin, else the sha256 the Hub recorded for the LFS file.

The Hub here is the real client against olah serving a stand-in for timm's repo (random weights of a small timm
ResNet under timm's own repo id), and the client's cache laid out as the Hub leaves it for an LFS file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from conftest import serve
from huggingface_hub import constants
from safetensors.torch import save_file

from ltzoo.hub import WEIGHTS_NAME, CorruptWeightsError, UnverifiedWeightsError, sha256_file, timm_backbone_weights
from ltzoo.models import LTNet

BACKBONE = "resnet10t"
REPO = "resnet10t.c3_in1k"  # timm's default tag of resnet10t: its weights are the Hub repo timm/resnet10t.c3_in1k


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, torch.Tensor]]]:
    """timm's repo for the backbone, served by the local Hub: (the weights file, its state dict)."""
    folder = tmp_path_factory.mktemp("timm") / REPO
    folder.mkdir()
    torch.manual_seed(0)
    state = timm.create_model(BACKBONE).state_dict()
    save_file(state, folder / WEIGHTS_NAME)
    (folder / "config.json").write_text(json.dumps({"architecture": BACKBONE, "num_classes": 1000}))
    with serve(folder.parent, tmp_path_factory.mktemp("olah"), tmp_path_factory.mktemp("hf-cache"), namespace="timm"):
        yield folder / WEIGHTS_NAME, state


def backbone_matches(model: LTNet, state: dict[str, torch.Tensor]) -> bool:
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}  # timm drops the 1000-class head
    return loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_a_pretrained_backbone_loads_timms_hub_weights_checked_against_the_pinned_sha256(timm_weights):
    path, state = timm_weights
    model = LTNet(BACKBONE, num_classes=5, pretrained_backbone=True, pretrained_backbone_sha256=sha256_file(path))
    assert backbone_matches(model, state)


def test_backbone_weights_that_differ_from_the_pinned_sha256_are_refused(timm_weights):
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        LTNet(BACKBONE, num_classes=5, pretrained_backbone=True, pretrained_backbone_sha256="0" * 64)


def test_backbone_weights_the_hub_records_no_sha256_for_are_refused_naming_the_pin_to_set(timm_weights):
    """olah serves plain git files: their etag is a git sha1, not the sha256 an LFS file carries."""
    path, _ = timm_weights
    with pytest.raises(UnverifiedWeightsError,
                       match=f"records no sha256 for timm/{REPO}/{WEIGHTS_NAME}.*pretrained_backbone_sha256="
                             f"{sha256_file(path)}"):
        LTNet(BACKBONE, num_classes=5, pretrained_backbone=True)


def lfs_cache(cache: Path, content: bytes, sha256: str) -> None:
    """The client's cache as the Hub leaves it for an LFS file: the blob named by its etag, the file's sha256."""
    repo = cache / f"models--timm--{REPO}"
    commit = "1" * 40
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha256).write_bytes(content)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / WEIGHTS_NAME).symlink_to(Path("../..") / "blobs" / sha256)


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    return tmp_path


def test_a_cached_lfs_backbone_file_is_checked_against_the_sha256_the_hub_recorded(timm_weights, offline_cache):
    path, state = timm_weights
    lfs_cache(offline_cache, path.read_bytes(), sha256_file(path))
    assert backbone_matches(LTNet(BACKBONE, num_classes=5, pretrained_backbone=True), state)


def test_a_cached_lfs_backbone_file_whose_content_differs_from_its_recorded_sha256_is_refused(timm_weights,
                                                                                            offline_cache):
    path, _ = timm_weights
    content = bytearray(path.read_bytes())
    content[-1] ^= 1
    lfs_cache(offline_cache, bytes(content), sha256_file(path))
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        LTNet(BACKBONE, num_classes=5, pretrained_backbone=True)


@pytest.mark.parametrize("tag", ["gcvit_tiny.in1k", "flexivit_small.300ep_in1k"])
def test_a_timm_tag_without_hub_safetensors_weights_is_refused_before_any_download(tag: str):
    """timm would fetch the first from a URL as a pickle and read the second with a custom (numpy) loader."""
    with pytest.raises(UnverifiedWeightsError, match=f"timm's pretrained {tag} is not on the Hub as a safetensors"):
        timm_backbone_weights(tag)


def test_a_pinned_backbone_sha256_without_the_pretrained_backbone_is_an_error():
    with pytest.raises(ValueError, match="set both or neither"):
        LTNet(BACKBONE, num_classes=5, pretrained_backbone_sha256="0" * 64)

