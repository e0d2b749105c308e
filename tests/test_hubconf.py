"""hubconf.py: torch.hub entry points generated from the registry, usable from a checkout without installing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

import ltzoo
from ltzoo.hub import WeightsNotAvailableError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hubconf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ltzoo_hubconf_under_test", REPO_DIR / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entry_points(module: ModuleType) -> set[str]:
    """What `torch.hub.list` reports: public callables of the hubconf module."""
    return {name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")}


def test_torch_hub_load_builds_the_named_model() -> None:
    model = torch.hub.load(str(REPO_DIR), "resnet32_smcl_cifar100_lt", source="local", pretrained=False)
    assert model.num_classes == 100
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_torch_hub_load_forwards_keyword_arguments() -> None:
    model = torch.hub.load(str(REPO_DIR), "resnet32_ldam_drw_cifar10_lt", source="local", num_classes=7)
    assert model.num_classes == 7
    assert type(model.get_classifier()).__name__ == "NormedLinear"


def test_every_registry_name_and_tag_is_an_entry_point(hubconf: ModuleType) -> None:
    assert entry_points(hubconf) == set(ltzoo.list_models()) | set(ltzoo.list_models(include_tags=True))


def test_torch_hub_load_reaches_a_tag_by_name_and_by_argument() -> None:
    by_name = torch.hub.load(str(REPO_DIR), "resnet32_ce_cifar100_lt.if10", source="local")
    by_tag = torch.hub.load(str(REPO_DIR), "resnet32_ce_cifar100_lt", source="local", tag="if10")
    assert by_name.pretrained_cfg["zoo_name"] == by_tag.pretrained_cfg["zoo_name"] == "resnet32_ce_cifar100_lt.if10"


def test_torch_hub_load_of_a_tag_loads_that_tags_published_weights(
    hubconf: ModuleType, releases_table: Callable[..., Path]
) -> None:
    releases_table({"resnet32_ce_cifar10_lt.if100": {"sha256": "0" * 64, "metrics": {}}})
    with pytest.raises(WeightsNotAvailableError, match="if50"):
        hubconf.resnet32_ce_cifar10_lt(tag="if50", pretrained=True)
    with pytest.raises(WeightsNotAvailableError, match="if50"):
        getattr(hubconf, "resnet32_ce_cifar10_lt.if50")(pretrained=True)


def test_entry_points_document_their_tags(hubconf: ModuleType) -> None:
    doc = hubconf.resnet32_concutmix_cifar100_lt.__doc__
    assert doc.startswith("resnet32_concutmix_cifar100_lt: Contrastive CutMix")
    assert "if100 (default), if50, if10, if100_e400" in doc
    assert all(getattr(hubconf, name).__doc__ for name in ltzoo.list_models())


def test_entry_points_build_without_weights_by_default(
    hubconf: ModuleType, releases_table: Callable[..., Path]
) -> None:
    assert hubconf.resnet32_ce_cifar10_lt().num_classes == 10
    with pytest.raises(WeightsNotAvailableError):
        hubconf.resnet32_ce_cifar10_lt(pretrained=True)


def test_dependencies_are_declared(hubconf: ModuleType) -> None:
    assert hubconf.dependencies == ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]


def test_torch_hub_load_works_without_ltzoo_installed() -> None:
    # `python -S` skips site and its .pth files (the editable install); site-packages is added back bare.
    script = (
        "import sys; sys.path.append(sys.argv[1]); import importlib.util, torch\n"
        "assert importlib.util.find_spec('ltzoo') is None, 'ltzoo is importable before torch.hub.load'\n"
        "model = torch.hub.load(sys.argv[2], 'resnet32_smcl_cifar10_lt', source='local')\n"
        "print(model.num_classes, sys.modules['ltzoo'].__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, sysconfig.get_paths()["purelib"], str(REPO_DIR)],
        capture_output=True, text=True, timeout=120, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    num_classes, ltzoo_file = result.stdout.split()
    assert num_classes == "10"
    assert Path(ltzoo_file) == REPO_DIR / "ltzoo" / "__init__.py"
