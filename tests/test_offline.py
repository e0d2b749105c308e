"""Without a reachable Hub, a pretrained load answers at once: from the cache, or with an error that says how to
serve the releases locally (huggingface_hub alone retries for about 25 s first)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import ServedHub
from huggingface_hub import constants

import ltzoo
from ltzoo import hub_server
from ltzoo.hub import HubUnreachableError, hub_reachable
from ltzoo_cli import main

OFFLINE_BUDGET_S = 3.0
pytestmark = pytest.mark.usefixtures("one_torch_thread", "releases_table")  # the served releases, not the zoo's


def closed_port_endpoint() -> str:
    """An endpoint on this machine where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(params=["refused", "unknown host"])
def unreachable_hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point huggingface_hub at a Hub that cannot be reached; the cache stays the test session's."""
    endpoint = closed_port_endpoint() if request.param == "refused" else "https://hub.ltzoo-test.invalid"
    for key in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.setattr(constants, key, getattr(constants, key))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    hub_server.use_endpoint(endpoint)
    yield endpoint


def test_an_unreachable_hub_is_detected_within_the_probe_timeout(unreachable_hub: str):
    start = time.perf_counter()
    assert not hub_reachable(unreachable_hub)
    assert time.perf_counter() - start < OFFLINE_BUDGET_S


def test_a_served_hub_is_reachable(local_hub: ServedHub):
    assert hub_reachable(local_hub.endpoint)


def test_validate_pretrained_without_a_hub_fails_fast_naming_the_local_hub(
        unreachable_hub: str, releases_table: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    releases_table({"resnet32_ce_cifar10_lt.if100": {"sha256": "ab" * 32, "metrics": {}}})
    start = time.perf_counter()
    assert main(["validate", "resnet32_ce_cifar10_lt", "--pretrained", "--data-dir", str(tmp_path)]) == 2
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert elapsed < OFFLINE_BUDGET_S, f"took {elapsed:.1f} s"
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"HF_ENDPOINT={unreachable_hub} is unreachable" in err
    assert "--local-hub releases" in err and "ltzoo serve-hub releases/" in err


def test_a_pretrained_load_without_a_hub_uses_the_cache_at_once(local_hub: ServedHub, monkeypatch: pytest.MonkeyPatch):
    online = ltzoo.create_model(local_hub.hf_hub(local_hub.cosine), pretrained=True)
    for key in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_OFFLINE"):
        monkeypatch.setattr(constants, key, getattr(constants, key))
    hub_server.use_endpoint(closed_port_endpoint())
    start = time.perf_counter()
    cached = ltzoo.create_model(local_hub.hf_hub(local_hub.cosine), pretrained=True)
    assert time.perf_counter() - start < OFFLINE_BUDGET_S
    assert all(torch.equal(a, b) for a, b in zip(online.state_dict().values(), cached.state_dict().values()))


def test_nothing_cached_and_no_hub_is_a_hub_unreachable_error(unreachable_hub: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubUnreachableError, match="nothing is cached"):
        ltzoo.create_model("hf-hub:ltzoo/resnet32_ce_cifar10_lt.if100", pretrained=True)
    assert not any((tmp_path / "empty-cache").rglob("*.safetensors"))
