"""What a new user meets first: `ltzoo --version`, the package metadata, the launcher's precision flag, and a test
suite that leaves the user's caches alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomllib

import ltzoo
from ltzoo.data import sources
from ltzoo.evaluation import cache
from ltzoo_cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.config import ConfigError, load_config  # noqa: E402
from training.train import apply_launcher_precision, mixed_precision, precision_notice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "training" / "configs" / "resnet32_ce_cifar10_lt.if100.yaml"


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"ltzoo {ltzoo.__version__}"


def test_the_license_is_an_spdx_string_that_setuptools_reads_without_deprecation():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"][0]  # the first release reading SPDX strings


def test_launcher_bf16_beats_precision_auto_and_counts_as_an_override():
    cfg = load_config(RECIPE)
    recipe = cfg.fingerprint()
    apply_launcher_precision(cfg, "bf16")
    assert cfg.precision == "bf16" and mixed_precision(cfg) == "bf16"
    assert cfg.fingerprint() == load_config(RECIPE, ["precision=bf16"]).fingerprint() != recipe


@pytest.mark.parametrize("launcher", [None, "no"])
def test_launcher_default_leaves_the_config_in_charge(launcher: str | None):
    cfg = load_config(RECIPE)
    apply_launcher_precision(cfg, launcher)
    assert cfg.precision == "auto"


@pytest.mark.parametrize(("launcher", "override", "message"), [
    ("fp16", [], "trains in bf16 or fp32 only"),
    ("fp8", [], "trains in bf16 or fp32 only"),
    ("bf16", ["precision=fp32"], "contradicts the config's precision: fp32"),
])
def test_a_launcher_precision_ltzoo_cannot_honour_is_refused(launcher: str, override: list[str], message: str):
    cfg = load_config(RECIPE, override)
    with pytest.raises(ConfigError, match=message):
        apply_launcher_precision(cfg, launcher)


def test_the_launchers_no_that_cannot_make_fp32_says_so():
    cfg = load_config(RECIPE, ["precision=bf16"])
    assert "pass precision=fp32" in precision_notice(cfg, "no")
    assert precision_notice(load_config(RECIPE, ["precision=fp32"]), "no") is None
    assert precision_notice(cfg, None) is None


def test_train_refuses_a_launcher_precision_before_training(tmp_path: Path):
    env = {**os.environ, "ACCELERATE_MIXED_PRECISION": "fp16"}
    result = subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "--config", str(RECIPE),
                             f"run_dir={tmp_path / 'run'}"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: accelerate launch --mixed_precision fp16: ltzoo trains in bf16 or fp32 only" in result.stderr
    assert not (tmp_path / "run").exists()


def test_help_and_version_answer_without_importing_torch():
    """`ltzoo --help` and `--version` run from the console module's parser alone (ltzoo_cli), not the package."""
    code = ("import sys, ltzoo_cli\n"
            "for argv in (['--help'], ['--version'], ['validate', '--help']):\n"
            "    try:\n        ltzoo_cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0\n"
            "assert 'torch' not in sys.modules and 'ltzoo' not in sys.modules, sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: ltzoo" in result.stdout and "ltzoo 0.1.0" in result.stdout


def test_the_suite_caches_decoded_archives_and_predictions_in_temporary_folders():
    """conftest moves both ltzoo caches (default ~/.cache/ltzoo/...) for this process and the scripts it starts."""
    temp = Path(tempfile.gettempdir()).resolve()
    for folder, variable in ((sources.DECODED_CACHE_DIR, "LTZOO_DECODED_CACHE"), (cache.cache_dir(), cache.CACHE_ENV)):
        assert folder.resolve().is_relative_to(temp), folder
        assert Path(os.environ[variable]).resolve().is_relative_to(temp)
