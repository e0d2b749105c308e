"""Run timm's own model tests (tests/test_models.py of the installed timm's sdist) on ltzoo's architectures.

    python scripts/timm_model_tests.py [-k forward] [--keep DIR]

Fetches the sdist of the installed timm version with pip (`pip download --no-deps --no-binary :all:`), extracts
tests/test_models.py into a temp dir (never committed), and runs it with pytest and a plugin that imports ltzoo
first, restricts every model list to ltzoo's registered architectures and their pretrained tags, and serves this
checkout's releases/ on a local Hub so the pretrained-loading tests download real weights. Tests written for named
timm models (not ltzoo's) are deselected; those of them that state a contract of every timm model (CONTRACTS: pooling
kept by reset_classifier, head width, grad checkpointing of a features_only model, pruning) run again, written to
test_ltzoo_contracts.py, on ltzoo's architectures. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""pytest plugin: timm's model tests, on ltzoo's architectures only."""
import fnmatch
import os
import sys
import tempfile

sys.path.insert(0, {repo!r})
import ltzoo  # noqa: F401,E402  (registers the architectures and their tags with timm)
import pytest  # noqa: E402
import timm  # noqa: E402
from timm.models import _registry  # noqa: E402

ARCHS = {{arch.timm_name for arch in ltzoo.registry.ARCHS.values()}}
_list_models, _list_pretrained = timm.list_models, timm.list_pretrained


def _ours(names):
    return [n for n in names if n.split(".")[0] in ARCHS]


def list_models(filter="", module="", *args, **kwargs):
    # module filters name timm's source files; ltzoo's architectures implement every API they select for
    return _ours(_list_models(filter, "", *args, **kwargs))


def list_pretrained(filter="", *args, **kwargs):
    return _ours(_list_pretrained(filter, *args, **kwargs))


timm.list_models, timm.list_pretrained = list_models, list_pretrained
_registry.list_models, _registry.list_pretrained = list_models, list_pretrained

SKIPS = {skips!r}


def pytest_configure(config):
    for marker in ("base", "cfg", "cfg_nonstd", "features", "backward", "forward", "fxforward", "fxbackward",
                   "timeout"):
        config.addinivalue_line("markers", marker)
    from ltzoo.hub_server import LocalHub, use_endpoint
    tmp = tempfile.mkdtemp(prefix="ltzoo-timm-tests-")
    config._ltzoo_hub = LocalHub(os.path.join({repo!r}, "releases"), workdir=os.path.join(tmp, "olah")).__enter__()
    use_endpoint(config._ltzoo_hub.endpoint, cache_dir=os.path.join(tmp, "hf-cache"))


def pytest_unconfigure(config):
    hub = getattr(config, "_ltzoo_hub", None)
    if hub is not None:
        hub.__exit__(None, None, None)


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {{}})
        name = params.get("model_name")
        (keep if isinstance(name, str) and name.split(".")[0] in ARCHS else drop).append(item)
        for pattern, reason in SKIPS.items():
            if fnmatch.fnmatch(item.name, pattern):
                item.add_marker(pytest.mark.skip(reason=reason))
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
'''

# test-name pattern -> why it does not apply to ltzoo's architectures
SKIPS: dict[str, str] = {}

# timm's tests of a contract every model keeps, parametrized there by a few named timm models: name -> extra args
CONTRACTS: dict[str, tuple] = {
    "test_reset_classifier_keeps_pool": (),
    "test_head_hidden_size": ({},),
    "test_features_only_grad_checkpointing_backward": (),
    "test_prune_intermediate_layers_params_used": (),
    "test_model_init_weights_after_to_empty": ({},),
}

CONTRACT_TESTS = '''
"""timm's contract tests (see scripts/timm_model_tests.py's CONTRACTS), on ltzoo's architectures."""
import pytest
import test_models
from conftest import ARCHS

CONTRACTS = {contracts!r}


@pytest.mark.parametrize("model_name", sorted(ARCHS))
@pytest.mark.parametrize("test", sorted(CONTRACTS))
def test_contract(test, model_name):
    if not hasattr(test_models, test):
        pytest.skip(f"this timm version's test_models.py has no {{test}}")
    getattr(test_models, test)(model_name, *CONTRACTS[test])
'''


def fetch_tests(dest: Path) -> Path:
    """Download the installed timm's sdist into `dest` and extract its tests/test_models.py there."""
    timm_version = version("timm")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
         f"timm=={timm_version}", "-d", str(dest)],
        check=True,
    )
    sdist = next(dest.glob(f"timm-{timm_version}.tar.gz"))
    with tarfile.open(sdist) as tar:
        member = tar.getmember(f"timm-{timm_version}/tests/test_models.py")
        (dest / "test_models.py").write_bytes(tar.extractfile(member).read())
    return dest / "test_models.py"


def plugin_source() -> str:
    """The pytest plugin's source, with this checkout's path and the skip list filled in."""
    return PLUGIN.format(repo=str(REPO), skips=SKIPS)


def contract_tests_source() -> str:
    """The test file that runs CONTRACTS on ltzoo's architectures."""
    return CONTRACT_TESTS.format(contracts=CONTRACTS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", default=None, help="pytest -k expression")
    p.add_argument("--keep", type=Path, help="fetch into this folder and keep it (default: a temp dir)")
    args, pytest_args = p.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="timm-tests-") as tmp:
        dest = args.keep or Path(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        tests = fetch_tests(dest)
        (dest / "conftest.py").write_text(plugin_source())
        contracts = dest / "test_ltzoo_contracts.py"
        contracts.write_text(contract_tests_source())
        command = [sys.executable, "-m", "pytest", str(tests), str(contracts), "-p", "no:cacheprovider", "-rs", "-q",
                   "--rootdir", str(dest), *pytest_args]
        if args.k:
            command += ["-k", args.k]
        return subprocess.run(command, cwd=dest).returncode


if __name__ == "__main__":
    sys.exit(main())
