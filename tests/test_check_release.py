"""training/check_release.py: a release is checked against the registry and a fresh measurement through the Hub."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training import check_release

ROOT = Path(__file__).resolve().parents[1]
CE = "resnet32_ce_cifar10_lt.if100"


def test_weights_the_registry_does_not_list_are_named_before_any_measurement(tmp_path: Path, monkeypatch):
    shutil.copytree(ROOT / "releases" / CE, tmp_path / CE)
    weights = tmp_path / CE / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last tensor
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(check_release, "validate", lambda *a, **k: pytest.fail("measured unregistered weights"))
    (problem,) = check_release.mismatches(CE, tmp_path, data_dir=None)
    assert problem.startswith(f"{CE}: weights sha256 ") and "but the registry has 85e3a4382e3c" in problem


def test_a_name_without_a_release_folder_is_refused(tmp_path: Path):
    with pytest.raises(SystemExit, match="no release folder for resnet32_ce_cifar10_lt.if50"):
        check_release.main(["resnet32_ce_cifar10_lt.if50", "--releases", str(tmp_path)])


@pytest.mark.slow
def test_a_published_release_reproduces_its_record_through_the_hub():
    assert check_release.main([CE]) == 0
