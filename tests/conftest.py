"""Shared fixtures: a real self-hosted Hub (olah) serving a few freshly saved zoo releases, and a releases table.

The Hub is never mocked: `local_hub` writes release folders with `ltzoo.save_pretrained`, serves them with
`ltzoo.hub_server.LocalHub` on a free port and points this process's huggingface_hub at it (with a cache of its
own), restoring the client's previous settings afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Tests write only into temporary folders: the decoded-archive cache (~/.cache/ltzoo/decoded by default) goes to one
# of this session's, for this process and every script it starts. Set before ltzoo is imported, which reads it.
_DECODED_CACHE = tempfile.mkdtemp(prefix="ltzoo-test-decoded-")
os.environ["LTZOO_DECODED_CACHE"] = _DECODED_CACHE

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from torch import nn  # noqa: E402

import ltzoo  # noqa: E402
from ltzoo import hub_server, registry  # noqa: E402
from ltzoo.hub import WEIGHTS_NAME  # noqa: E402
from ltzoo.models import ProjectionMLP  # noqa: E402

LINEAR = "resnet32_ce_cifar10_lt.if100"
COSINE = "resnet32_ldam_drw_cifar10_lt.if100"
WITH_HEADS = "resnet32_smcl_cifar10_lt.if100"
HEADS_SPEC = {"proj": {"type": "mlp", "in_features": 64, "hidden": 64, "out_features": 128}}
_CLIENT_SETTINGS = ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_OFFLINE", "HF_HUB_CACHE")


@dataclass(frozen=True)
class ServedHub:
    """A running local Hub: its endpoint, the releases it serves and the models they were saved from."""

    endpoint: str
    namespace: str
    releases_dir: Path
    cache_dir: Path
    models: dict[str, nn.Module]  # "name.tag" -> the original model, in eval mode
    linear: str = LINEAR
    cosine: str = COSINE
    with_heads: str = WITH_HEADS

    def folder(self, name: str) -> Path:
        return self.releases_dir / name

    def weights(self, name: str) -> Path:
        return self.folder(name) / WEIGHTS_NAME

    def repo_id(self, name: str) -> str:
        return f"{self.namespace}/{name}"

    def hf_hub(self, name: str) -> str:
        """The `hf-hub:` model name of a served release."""
        return f"hf-hub:{self.repo_id(name)}"


def _build_releases(releases_dir: Path) -> dict[str, nn.Module]:
    """Save three random-init zoo models: a linear head, a cosine head, and one with a training-only head."""
    torch.manual_seed(0)
    models = {name: ltzoo.create_model(name) for name in (LINEAR, COSINE, WITH_HEADS)}
    models[WITH_HEADS].train_heads["proj"] = ProjectionMLP(64, 64, 128)
    for name, model in models.items():
        entry, tag = registry.resolve(name)
        ltzoo.save_pretrained(
            model, releases_dir / name,
            ltzoo_meta={"name": entry.name, "tag": tag, "method": entry.method, "dataset": entry.dataset},
            heads_spec=HEADS_SPEC if name == WITH_HEADS else None,
        )
        model.eval()
    return models


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_DECODED_CACHE, ignore_errors=True)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded: on a shared 2-core machine, busy intra-op threads slow small models ~10×."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A huggingface_hub cache folder of this test session only."""
    return tmp_path_factory.mktemp("hf-cache")


@contextmanager
def serve(releases_dir: Path, workdir: Path, cache_dir: Path,
          namespace: str | None = None) -> Iterator[hub_server.LocalHub]:
    """Serve a releases folder with olah and point the client at it; restore the client's settings afterwards."""
    saved = {key: getattr(constants, key) for key in _CLIENT_SETTINGS}
    saved_env = os.environ.get("HF_ENDPOINT")
    with hub_server.LocalHub(releases_dir, namespace=namespace, workdir=workdir) as hub:
        hub_server.use_endpoint(hub.endpoint, cache_dir=cache_dir)
        try:
            yield hub
        finally:
            for key, value in saved.items():
                setattr(constants, key, value)
            if saved_env is None:
                os.environ.pop("HF_ENDPOINT", None)
            else:
                os.environ["HF_ENDPOINT"] = saved_env


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory, hf_cache: Path) -> Iterator[ServedHub]:
    """Serve freshly saved releases with olah and point the in-process huggingface_hub client at them."""
    releases_dir = tmp_path_factory.mktemp("releases")
    models = _build_releases(releases_dir)
    with serve(releases_dir, tmp_path_factory.mktemp("olah"), hf_cache) as hub:
        yield ServedHub(hub.endpoint, hub.namespace, releases_dir, hf_cache, models)


@pytest.fixture
def releases_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Path]:
    """Point the registry at a temporary releases.json (empty until the returned writer is called)."""
    path = tmp_path / "releases.json"
    path.write_text("{}")
    monkeypatch.setattr(registry, "RELEASES_FILE", path)

    def write(table: dict[str, Any]) -> Path:
        path.write_text(json.dumps(table))
        return path

    return write


@pytest.fixture(scope="session", autouse=True)
def prediction_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test caches predictions in a temp folder ($LTZOO_CACHE_DIR), never in the user's cache."""
    from ltzoo.evaluation.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("ltzoo_cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = previous
