"""timm's own model tests (its sdist's tests/test_models.py) pass on ltzoo's architectures: scripts/timm_model_tests.py.

Slow (about 10 minutes on 2 shared cores) and it needs pip to reach the package index: run with `-m slow`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "timm_model_tests.py"


def test_the_plugin_the_script_writes_is_valid_python() -> None:
    """The fast guard for the slow test below: the templates of the plugin and of the contract tests format (their
    braces are escaped) and compile."""
    spec = importlib.util.spec_from_file_location("timm_model_tests", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = script.plugin_source()
    compile(source, "conftest.py", "exec")
    assert "{arch.timm_name for arch in ltzoo.registry.ARCHS.values()}" in source
    compile(script.contract_tests_source(), "test_ltzoo_contracts.py", "exec")


@pytest.mark.slow
def test_timms_model_tests_pass_on_every_ltzoo_architecture(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--keep", str(tmp_path)], capture_output=True, text=True,
                            timeout=3600)
    assert result.returncode == 0, result.stdout[-5000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
