"""The zoo table: names, tags, pretrained cfgs, the Hub namespace, name errors and the releases table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ltzoo
from ltzoo import registry
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from ltzoo.registry import UnknownModelError

CIFAR = ("cifar10_lt", "cifar100_lt")
TIMM_CFG_FIELDS = ("hf_hub_id", "num_classes", "input_size", "mean", "std", "crop_pct", "interpolation", "license")
SHA = "ab" * 32


def test_smcl_entries() -> None:
    assert ltzoo.list_models("*smcl*") == [
        "resnet32_smcl_cifar100_lt", "resnet32_smcl_cifar10_lt", "resnet50_smcl_imagenet_lt",
        "resnext50_smcl_imagenet_lt",
    ]


def test_resnext50_smcl_imagenet_lt_is_registered() -> None:
    assert ltzoo.is_model("resnext50_smcl_imagenet_lt")
    assert registry.get_entry("resnext50_smcl_imagenet_lt").timm_arch == "lt_resnext50_32x4d"


@pytest.mark.parametrize("name", [e.name for e in registry.entries() if e.dataset in CIFAR])
def test_every_cifar_entry_has_the_imbalance_tags(name: str) -> None:
    entry = registry.get_entry(name)
    assert entry.tags[:3] == ("if100", "if50", "if10")
    assert entry.default_tag == "if100"


def test_list_models_with_tags_lists_each_tag() -> None:
    assert ltzoo.list_models("resnet32_ce_cifar10_lt*", include_tags=True) == [
        "resnet32_ce_cifar10_lt.if10", "resnet32_ce_cifar10_lt.if100", "resnet32_ce_cifar10_lt.if50",
    ]


def test_name_without_tag_means_the_default_tag() -> None:
    assert registry.resolve("resnet32_bcl_cifar100_lt") == registry.resolve("resnet32_bcl_cifar100_lt.if100")
    assert registry.resolve("resnext50_concutmix_imagenet_lt")[1] == "e90"
    assert registry.get_pretrained_cfg("resnet32_bcl_cifar100_lt") == registry.get_pretrained_cfg(
        "resnet32_bcl_cifar100_lt.if100"
    )


@pytest.mark.parametrize("tag, imb_factor", [("if100", 100.0), ("if50", 50.0), ("if10", 10.0)])
def test_cifar_pretrained_cfg(tag: str, imb_factor: float) -> None:
    cfg = ltzoo.get_pretrained_cfg(f"resnet32_ldam_drw_cifar100_lt.{tag}")
    assert {
        "hf_hub_id": f"ltzoo/resnet32_ldam_drw_cifar100_lt.{tag}", "num_classes": 100, "input_size": (3, 32, 32),
        "mean": CIFAR_MEAN, "std": CIFAR_STD, "crop_pct": 1.0, "interpolation": "bilinear",
        "license": "apache-2.0", "recipe": f"resnet32_ldam_drw_cifar100_lt.{tag}",
        "paper": "arXiv:1906.07413", "imb_factor": imb_factor,
    }.items() <= cfg.items()


def test_imagenet_pretrained_cfg() -> None:
    cfg = ltzoo.get_pretrained_cfg("resnext50_smcl_imagenet_lt")
    assert {
        "hf_hub_id": "ltzoo/resnext50_smcl_imagenet_lt.e100", "num_classes": 1000, "input_size": (3, 224, 224),
        "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": 0.875,
        "interpolation": "bilinear", "license": "apache-2.0", "paper": "arXiv:2406.02223",
        "recipe": "resnext50_smcl_imagenet_lt.e100",
    }.items() <= cfg.items()
    assert "imb_factor" not in cfg


def test_pretrained_cfg_without_release_has_no_sha_or_metrics(releases_table: Callable[..., Path]) -> None:
    cfg = ltzoo.get_pretrained_cfg("resnet32_ce_cifar10_lt")
    assert set(TIMM_CFG_FIELDS) <= set(cfg)
    assert cfg["sha256"] is None and cfg["metrics"] is None


def test_pretrained_cfg_carries_the_released_sha_and_metrics(releases_table: Callable[..., Path]) -> None:
    metrics = {"top1": 71.2, "many": 90.1, "medium": 70.0, "few": 50.3}
    releases_table({"resnet32_ce_cifar10_lt.if50": {"sha256": SHA, "metrics": metrics}})
    cfg = ltzoo.get_pretrained_cfg("resnet32_ce_cifar10_lt.if50")
    assert (cfg["sha256"], cfg["metrics"]) == (SHA, metrics)
    assert ltzoo.get_pretrained_cfg("resnet32_ce_cifar10_lt.if100")["sha256"] is None


def test_hub_namespace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.HUB_NAMESPACE_ENV, "my-lab")
    assert registry.HUB_NAMESPACE_ENV == "LTZOO_HUB_NAMESPACE"
    assert ltzoo.get_pretrained_cfg("resnet32_ce_cifar10_lt.if10")["hf_hub_id"] == "my-lab/resnet32_ce_cifar10_lt.if10"


def test_misspelt_name_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError) as err:
        registry.resolve("resnet32_smcl_cifar100lt")
    message = str(err.value)
    assert "'resnet32_smcl_cifar100lt'" in message
    assert "resnet32_smcl_cifar100_lt" in message


def test_unknown_tag_lists_the_tags() -> None:
    with pytest.raises(UnknownModelError, match="tags are if100, if50, if10 \\(default if100\\)"):
        registry.resolve("resnet32_ce_cifar10_lt.if20")


def test_is_model_is_false_for_unknown_names_and_tags() -> None:
    assert not ltzoo.is_model("resnet32_ce_cifar10_lt.if20")
    assert not ltzoo.is_model("vit_ce_cifar10_lt")


def test_list_models_pretrained_lists_only_released_tags(releases_table: Callable[..., Path]) -> None:
    table: dict[str, Any] = {
        "resnet32_ce_cifar10_lt.if100": {"sha256": SHA},
        "resnet32_ce_cifar10_lt.if10": {"sha256": SHA},
        "resnext50_smcl_imagenet_lt.e100": {"sha256": SHA},
    }
    releases_table(table)
    assert ltzoo.list_models(pretrained=True) == sorted(table)
    assert ltzoo.list_pretrained("resnet32_*") == ["resnet32_ce_cifar10_lt.if10", "resnet32_ce_cifar10_lt.if100"]
    assert ltzoo.list_models(pretrained=True, include_tags=False) == [
        "resnet32_ce_cifar10_lt", "resnext50_smcl_imagenet_lt",
    ]


def test_list_models_pretrained_is_empty_without_releases(releases_table: Callable[..., Path]) -> None:
    assert ltzoo.list_models(pretrained=True) == []
    assert len(ltzoo.list_models()) == len(registry.entries())


def test_a_filter_without_tag_matches_the_tagged_names_as_timm_does(releases_table: Callable[..., Path]) -> None:
    releases_table({"resnet32_ce_cifar10_lt.if100": {"sha256": SHA}, "resnet32_ce_cifar100_lt.if50": {"sha256": SHA}})
    assert ltzoo.list_models("*cifar10_lt", pretrained=True) == ["resnet32_ce_cifar10_lt.if100"]
    assert ltzoo.list_models("*cifar10_lt.if100", pretrained=True) == ["resnet32_ce_cifar10_lt.if100"]
    assert ltzoo.list_models("*cifar10_lt.if50", pretrained=True) == []
    assert ltzoo.list_models("resnet32_ce_cifar10_lt", include_tags=True) == [
        "resnet32_ce_cifar10_lt.if10", "resnet32_ce_cifar10_lt.if100", "resnet32_ce_cifar10_lt.if50",
    ]
