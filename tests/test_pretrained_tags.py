"""The zoo's releases as timm pretrained tags, and one sha256 policy on every load path (ltzoo, plain timm, hf-hub:,
local-dir:, local files), through a real local Hub serving this checkout's releases/."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from conftest import serve
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

import ltzoo
import ltzoo_cli as cli
from ltzoo import registry
from ltzoo.hub import CorruptWeightsError, UnverifiedWeightsError, sha256_file
from ltzoo.registry import UnknownModelError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
RELEASES = sorted(registry.releases())
CE = "resnet32_ce_cifar10_lt.if100"
NO_SHA, BAD_ARGS, BAD_SOURCE = "crafted_no_sha", "crafted_model_args", "crafted_source"  # no release name


def timm_name(release: str) -> str:
    entry, tag = registry.resolve(release)
    return f"{entry.timm_arch}.{registry.timm_tag(entry, tag)}"


def _craft(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def released_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The repo's releases/ plus three crafted repos, served by olah; yields the namespace."""
    root = tmp_path_factory.mktemp("served")
    for release in RELEASES:
        shutil.copytree(REPO / "releases" / release, root / release)
    for name in (NO_SHA, BAD_ARGS, BAD_SOURCE):
        shutil.copytree(REPO / "releases" / CE, root / name)
    _craft(root / NO_SHA, lambda c: c["ltzoo"].pop("files"))
    _craft(root / BAD_ARGS, lambda c: c["model_args"].update(checkpoint_path="/tmp/planted.pth"))
    _craft(root / BAD_SOURCE, lambda c: c["pretrained_cfg"].update(file="/tmp/planted.pth"))
    with serve(root, tmp_path_factory.mktemp("olah"), tmp_path_factory.mktemp("hf-cache")) as hub:
        yield hub.namespace


def tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return model.state_dict()


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_release_is_a_timm_pretrained_tag() -> None:
    archs = {arch.timm_name for arch in registry.ARCHS.values()}
    assert sorted(timm_name(r) for r in RELEASES) == sorted(
        n for n in timm.list_pretrained() if n.split(".")[0] in archs and "." in n)
    assert timm.list_pretrained("resnet32_cifar.ce_cifar10_lt_if100") == ["resnet32_cifar.ce_cifar10_lt_if100"]


@pytest.mark.parametrize("release", RELEASES)
def test_timm_tag_loads_exactly_what_ltzoo_loads(released_hub: str, release: str) -> None:
    ours = ltzoo.create_model(release, pretrained=True)
    theirs = timm.create_model(timm_name(release), pretrained=True)
    assert ours.pretrained_cfg == theirs.pretrained_cfg
    assert ours.pretrained_cfg["hf_hub_id"] == f"{released_hub}/{release}"
    assert ours.pretrained_cfg["sha256"] == registry.releases()[release]["sha256"]
    assert {"crop_mode", "fixed_input_size", "pool_size", "recipe", "paper", "metrics"} <= set(ours.pretrained_cfg)
    a, b = tensors(ours), tensors(theirs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hf_hub_name_gives_the_same_model_and_cfg_on_both_paths(released_hub: str) -> None:
    ours = ltzoo.create_model(f"hf-hub:{released_hub}/{CE}", pretrained=True)
    theirs = timm.create_model(f"hf-hub:{released_hub}/{CE}", pretrained=True)
    assert ours.pretrained_cfg == theirs.pretrained_cfg
    assert ours.pretrained_cfg["sha256"] == registry.releases()[CE]["sha256"]
    assert ours.pretrained_cfg["zoo_name"] == CE
    assert all(torch.equal(v, tensors(theirs)[k]) for k, v in tensors(ours).items())


def test_a_tampered_cached_blob_is_refused_on_every_path(
    released_hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    from huggingface_hub import hf_hub_download

    flip_last_byte(Path(hf_hub_download(f"{released_hub}/{CE}", "model.safetensors")).resolve())
    for load in (
        lambda: ltzoo.create_model(CE, pretrained=True),
        lambda: timm.create_model(timm_name(CE), pretrained=True),
        lambda: timm.create_model(f"hf-hub:{released_hub}/{CE}", pretrained=True),
    ):
        with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
            load()


@pytest.fixture
def release_copy(tmp_path: Path) -> Path:
    """A copy of the CE release folder (weights + the config.json that records their sha256)."""
    folder = tmp_path / "copy"
    shutil.copytree(REPO / "releases" / CE, folder)
    return folder


def test_a_flipped_bit_beside_a_config_json_is_refused_by_checkpoint_path_and_validate(
    release_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = release_copy / "model.safetensors"
    flip_last_byte(weights)
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        ltzoo.create_model(CE, checkpoint_path=weights)
    assert cli.main(["validate", CE, "--checkpoint", str(weights)]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err


def test_a_flipped_bit_is_refused_by_plain_timm_local_paths(release_copy: Path) -> None:
    flip_last_byte(release_copy / "model.safetensors")
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        timm.create_model(f"local-dir:{release_copy}", pretrained=True)
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        timm.create_model("resnet32_cifar", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(release_copy / "model.safetensors")))


def test_timms_own_checkpoint_path_is_checked_for_ltzoo_architectures(release_copy: Path) -> None:
    weights = release_copy / "model.safetensors"
    loaded = timm.create_model("resnet32_cifar", checkpoint_path=str(weights))
    assert torch.equal(loaded.state_dict()["fc.bias"], ltzoo.create_model(CE, checkpoint_path=weights).fc.bias)
    flip_last_byte(weights)
    with pytest.raises(CorruptWeightsError, match="sha256 mismatch"):
        timm.create_model("resnet32_cifar", checkpoint_path=str(weights))


def test_a_release_folders_weights_are_checked_against_the_registry_without_config(tmp_path: Path) -> None:
    folder = tmp_path / CE  # named for the release, no config.json beside the file
    folder.mkdir()
    shutil.copy(REPO / "releases" / CE / "model.safetensors", folder / "model.safetensors")
    flip_last_byte(folder / "model.safetensors")
    with pytest.raises(CorruptWeightsError, match=registry.releases()[CE]["sha256"]):
        ltzoo.create_model(CE, checkpoint_path=folder / "model.safetensors")


def test_a_file_without_any_recorded_sha_loads_with_a_one_line_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bare = tmp_path / "mine.safetensors"
    shutil.copy(REPO / "releases" / CE / "model.safetensors", bare)
    with caplog.at_level(logging.WARNING, logger="ltzoo"):
        model = ltzoo.create_model(CE, checkpoint_path=bare)
    notices = [r.getMessage() for r in caplog.records if r.name == "ltzoo"]
    assert len(notices) == 1 and "\n" not in notices[0] and "no sha256 recorded" in notices[0]
    assert model.pretrained_cfg["file"] == str(bare) and "sha256" not in model.pretrained_cfg


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    state = load_file(str(REPO / "releases" / CE / "model.safetensors"))
    state["fc.bias"][3] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(CorruptWeightsError, match="'fc.bias' holds NaN or Inf"):
        ltzoo.create_model(CE, checkpoint_path=tmp_path / "nan.safetensors")


def test_nan_weights_are_refused_by_timms_own_checkpoint_path(tmp_path: Path) -> None:
    state = load_file(str(REPO / "releases" / CE / "model.safetensors"))
    state["fc.bias"][3] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(CorruptWeightsError, match="'fc.bias' holds NaN or Inf"):
        timm.create_model("resnet32_cifar", checkpoint_path=str(tmp_path / "nan.safetensors"))


def test_a_url_source_is_refused() -> None:
    with pytest.raises(UnverifiedWeightsError, match="not from a URL"):
        timm.create_model("lt_resnet50", pretrained=True,
                          pretrained_cfg_overlay=dict(url="https://example.com/weights.pth"))


def test_hub_model_args_outside_the_allow_list_are_refused_on_both_paths(released_hub: str) -> None:
    with pytest.raises(UnverifiedWeightsError, match=r"model_args \['checkpoint_path'\]"):
        ltzoo.create_model(f"hf-hub:{released_hub}/{BAD_ARGS}", pretrained=True)
    with pytest.raises(UnverifiedWeightsError, match=r"model_args \['checkpoint_path'\]"):
        timm.create_model(f"hf-hub:{released_hub}/{BAD_ARGS}", pretrained=True)


def test_a_hub_config_pointing_at_another_weights_file_is_refused(released_hub: str) -> None:
    with pytest.raises(UnverifiedWeightsError, match=r"points its pretrained_cfg at other weights \(\['file'\]\)"):
        ltzoo.create_model(f"hf-hub:{released_hub}/{BAD_SOURCE}", pretrained=True)


def test_a_hub_repo_without_a_recorded_sha_is_refused_saying_so(released_hub: str) -> None:
    for load in (ltzoo.create_model, timm.create_model):
        with pytest.raises(UnverifiedWeightsError, match="records no sha256"):
            load(f"hf-hub:{released_hub}/{NO_SHA}", pretrained=True)


def test_an_empty_hf_hub_id_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="names no Hub repo"):
        ltzoo.create_model("hf-hub:", pretrained=True)


def test_an_architecture_without_released_weights_says_so() -> None:
    with pytest.raises(ltzoo.hub.WeightsNotAvailableError, match="none is published yet"):
        timm.create_model("lt_resnet50", pretrained=True)


def test_the_cross_entropy_baseline_is_the_default_weight_of_its_architecture(released_hub: str) -> None:
    model = timm.create_model("resnet32_cifar", pretrained=True)
    assert model.pretrained_cfg["zoo_name"] == CE


def test_a_later_release_on_another_benchmark_or_tag_does_not_take_the_default_over(releases_table) -> None:
    """CIFAR-100-LT's CE sorts before CIFAR-10-LT's ('cifar100' < 'cifar10_'), and IF 100 before IF 50 only by luck."""
    from ltzoo.models._timm_registration import _default_cfgs

    table = json.loads((REPO / "ltzoo" / "releases.json").read_text())  # the fixture emptied registry.releases()
    releases_table({"resnet32_ce_cifar100_lt.if100": table[CE], "resnet32_ce_cifar10_lt.if10": table[CE], **table})
    defaults = [name for name in _default_cfgs() if name.endswith("*")]
    assert "resnet32_cifar.ce_cifar10_lt_if100*" in defaults


def test_the_served_weights_are_the_committed_files(released_hub: str) -> None:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(f"{released_hub}/{CE}", "model.safetensors")
    assert sha256_file(path) == registry.releases()[CE]["sha256"]


@pytest.mark.parametrize("method", ["la", "cmo"])
def test_a_method_without_releases_is_no_timm_pretrained_tag_and_builds_with_timms_cfg(method: str) -> None:
    """Zoo methods with no published weights yet (la, cmo): timm lists no tag of theirs and refuses one; their
    weightless models carry the same timm cfg as the registry, and asking for weights names the recipe."""
    names = ltzoo.list_models(f"resnet32_{method}_cifar*")
    assert names and ltzoo.list_pretrained(f"*_{method}_*") == []
    assert [n for n in timm.list_pretrained() if n.partition(".")[2].startswith(f"{method}_")] == []
    with pytest.raises(RuntimeError, match="Invalid pretrained tag"):
        timm.create_model(timm_name(names[0]), pretrained=True)
    model = ltzoo.create_model(names[0])
    assert model.pretrained_cfg == registry.pretrained_cfg(names[0]).to_dict()
    assert {"architecture", "tag", "crop_mode", "fixed_input_size", "pool_size", "classifier"} <= set(
        model.pretrained_cfg)
    assert "sha256" not in model.pretrained_cfg
    with pytest.raises(ltzoo.hub.WeightsNotAvailableError, match="no published weights yet"):
        ltzoo.create_model(names[0], pretrained=True)
