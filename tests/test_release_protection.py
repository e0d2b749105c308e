"""Nothing a training run does can damage a published release: a run exports into its run dir (or `release_dir=DIR`,
never releases/), `--release` publishes only the recipe file unchanged, and replacing a release's weights with
different ones needs `--force`.

End-to-end runs use a temporary copy of the repository (`ltzoo/`, `training/`, one release, under git), so the
real releases/ is never written; its recipe file is shrunk to one optimisation step where a test must publish.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_training
import torch
from test_training import TINY_CIFAR, _env, explain

import ltzoo
from ltzoo.hub import sha256_file
from ltzoo.models import ProjectionMLP

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training import export  # noqa: E402
from training.config import load_config  # noqa: E402
from training.export import ReleaseError, check_overwrite, export_dir, portable  # noqa: E402
from training.train import weights_digest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "resnet32_ce_cifar10_lt.if100"
RECIPE = f"training/configs/{NAME}.yaml"
FINAL_SHA = re.compile(r"final weights sha256 ([0-9a-f]{64})")
tiny_cifar_root = test_training.tiny_cifar_root  # the fixture: real training archive, 200 real test images


# --- where an export goes -------------------------------------------------------------------------------------------

def test_a_run_without_release_exports_into_its_run_dir(tmp_path: Path):
    cfg = load_config(ROOT / RECIPE, [f"run_dir={tmp_path / 'run'}", "epochs=1"])
    assert export_dir(cfg, str(ROOT / RECIPE), release=False) == tmp_path / "run" / "export"


def test_release_dir_outside_releases_is_where_an_ablation_exports(tmp_path: Path):
    cfg = load_config(ROOT / RECIPE, [f"release_dir={tmp_path / 'ablations' / 'x'}", "optim.lr=0.05"])
    assert export_dir(cfg, str(ROOT / RECIPE), release=False) == tmp_path / "ablations" / "x"


def test_a_relative_release_dir_is_taken_from_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / RECIPE, ["release_dir=results/ablations/x"])
    assert export_dir(cfg, str(ROOT / RECIPE), release=False) == export.ROOT / "results" / "ablations" / "x"


@pytest.mark.parametrize("inside", ["", "/sub", "/../releases"])
def test_release_dir_into_releases_is_refused_without_release(inside: str):
    cfg = load_config(ROOT / RECIPE, [f"release_dir={export.RELEASES}{inside}"])
    with pytest.raises(ReleaseError, match="only --release writes there"):
        export_dir(cfg, str(ROOT / RECIPE), release=False)


def test_release_publishes_the_recipe_file_unchanged_into_releases(tmp_path: Path):
    cfg = load_config(ROOT / RECIPE, [f"run_dir={tmp_path}", "data.root=/elsewhere", "eval_every=5"])
    assert export_dir(cfg, str(ROOT / RECIPE), release=True) == export.RELEASES


def test_release_of_a_config_whose_overrides_change_the_recipe_is_refused():
    cfg = load_config(ROOT / RECIPE, ["epochs=1"])
    with pytest.raises(ReleaseError, match="publishes only the recipe .* unchanged"):
        export_dir(cfg, str(ROOT / RECIPE), release=True)


def test_release_with_a_release_dir_elsewhere_is_refused(tmp_path: Path):
    cfg = load_config(ROOT / RECIPE, [f"release_dir={tmp_path}"])
    with pytest.raises(ReleaseError, match="drop release_dir"):
        export_dir(cfg, str(ROOT / RECIPE), release=True)


# --- replacing a release's weights ----------------------------------------------------------------------------------

@pytest.fixture
def released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A release folder of a random-init model in a temporary releases/ (the module's RELEASES points at it)."""
    monkeypatch.setattr(export, "RELEASES", tmp_path / "releases")
    torch.manual_seed(0)
    return ltzoo.save_pretrained(ltzoo.create_model(NAME), tmp_path / "releases" / NAME)


def test_replacing_a_release_with_different_weights_names_both_sha256s(released: Path):
    old = sha256_file(released / "model.safetensors")
    with pytest.raises(ReleaseError, match=f"sha256 {old}.*sha256 {'f' * 64}: pass --force"):
        check_overwrite(released, "f" * 64, force=False)


def test_replacing_a_release_with_identical_weights_needs_no_force(released: Path):
    check_overwrite(released, sha256_file(released / "model.safetensors"), force=False)


def test_force_replaces_a_release_with_different_weights(released: Path):
    check_overwrite(released, "f" * 64, force=True)


def test_a_run_still_to_train_is_refused_over_an_existing_release(released: Path):
    with pytest.raises(ReleaseError, match="already released .* not trained yet: pass --force"):
        check_overwrite(released, None, force=False)


def test_a_folder_outside_releases_is_overwritten_freely(tmp_path: Path):
    folder = ltzoo.save_pretrained(ltzoo.create_model(NAME), tmp_path / "ablations" / NAME)
    check_overwrite(folder, "f" * 64, force=False)


# --- what an export writes ------------------------------------------------------------------------------------------

def test_the_printed_weights_digest_is_the_sha256_of_the_exported_file(tmp_path: Path):
    model = ltzoo.create_model("resnet32_smcl_cifar10_lt.if100")
    model.train_heads["proj"] = ProjectionMLP(64, 64, 128)  # training-only: not in model.safetensors
    folder = ltzoo.save_pretrained(model, tmp_path / "release")
    assert weights_digest(model) == sha256_file(folder / "model.safetensors")


def test_saved_weights_are_readable_by_everyone(tmp_path: Path):
    folder = ltzoo.save_pretrained(ltzoo.create_model(NAME), tmp_path / "release")
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.glob("*.safetensors")} == {"model.safetensors": 0o644}


def test_portable_strips_machine_paths_but_keeps_the_file_name():
    meta = {"data_source": "shared JPEG archive at /work/shared/data/cifar10_train_jpeg.npz, seed 0",
            "recipe": f"{export.ROOT}/training/configs/x.yaml", "runs": [f"{Path.home()}/.cache/ltzoo/runs/x", 3],
            "init_from": "~/.cache/ltzoo/runs/y", "ratio": "20/100"}
    assert portable(meta) == {"data_source": "shared JPEG archive at cifar10_train_jpeg.npz, seed 0",
                              "recipe": "training/configs/x.yaml", "runs": ["~/.cache/ltzoo/runs/x", 3],
                              "init_from": "~/.cache/ltzoo/runs/y", "ratio": "20/100"}


# --- end to end, in a copy of the repository ------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The package, the training scripts and one published release, copied and committed to a fresh git repo."""
    repo = tmp_path / "ltzoo"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("ltzoo", "training"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    shutil.copytree(ROOT / "releases" / NAME, repo / "releases" / NAME)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "copy")
    return repo


def run_train(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`python training/train.py --config <recipe> ARGS` in `repo`, its own copy of ltzoo first on the path."""
    env = _env()
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "training/train.py", "--config", RECIPE, *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)


def assert_refused(result: subprocess.CompletedProcess, repo: Path, *needles: str, at_start: bool = True) -> None:
    """Stopped with a one-line error (`at_start`: before loading data or training); releases/ as committed."""
    assert result.returncode != 0, explain(result)
    assert "Traceback" not in result.stderr, explain(result)
    assert not at_start or "iterations/epoch" not in result.stdout, explain(result)
    for needle in needles:
        assert needle in result.stderr, explain(result)
    assert _git(repo, "status", "--porcelain", "releases/") == ""


def test_a_trial_run_exports_into_its_run_dir_and_leaves_releases_untouched(repo_copy: Path, tiny_cifar_root: Path,
                                                                            tmp_path: Path):
    run_dir = tmp_path / "x"
    result = run_train(repo_copy, *TINY_CIFAR, f"data.root={tiny_cifar_root}", f"run_dir={run_dir}")
    assert result.returncode == 0, explain(result)
    out = run_dir / "export" / NAME
    assert f"release written to {out}" in result.stdout
    assert _git(repo_copy, "status", "--porcelain", "releases/") == ""
    files = {p.name: p for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= files.keys()
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in files.values())
    assert FINAL_SHA.search(result.stdout)[1] == sha256_file(out / "model.safetensors")
    for text in (files["config.json"].read_text(), files["README.md"].read_text()):
        assert str(tmp_path) not in text and str(Path.home()) not in text and "/work/" not in text
        assert not re.search(r"(?<![\w.~])/(tmp|home|root|work|usr)/", text)
    meta = json.loads(files["config.json"].read_text())["ltzoo"]
    assert meta["validate_command"] == f"ltzoo validate {NAME} --checkpoint model.safetensors"


def test_release_of_an_overridden_config_is_refused_before_training(repo_copy: Path, tmp_path: Path):
    result = run_train(repo_copy, "epochs=1", f"run_dir={tmp_path / 'run'}", "--release")
    assert_refused(result, repo_copy, "--release publishes only the recipe", "unchanged")
    assert not (tmp_path / "run").exists()


def test_a_trial_run_with_release_dir_in_releases_is_refused(repo_copy: Path, tmp_path: Path):
    result = run_train(repo_copy, "epochs=1", f"run_dir={tmp_path / 'run'}", "release_dir=releases")
    assert_refused(result, repo_copy, "release_dir=releases is the published releases folder")


def test_release_over_an_existing_release_is_refused_before_training(repo_copy: Path, tmp_path: Path):
    old = sha256_file(repo_copy / "releases" / NAME / "model.safetensors")
    result = run_train(repo_copy, f"run_dir={tmp_path / 'run'}", "--release")
    assert_refused(result, repo_copy, f"releases/{NAME} is already released (model.safetensors sha256 {old})",
                   "--force")


@pytest.mark.slow
def test_release_replaces_different_weights_only_with_force(repo_copy: Path, tiny_cifar_root: Path, tmp_path: Path):
    """The recipe file itself is one step long here: train it, then publish the finished run (`--resume auto`)."""
    recipe = repo_copy / RECIPE
    recipe.write_text(recipe.read_text().replace("epochs: 200", "epochs: 1").replace("batch_size: 128",
                      "batch_size: 16\n  subset: 16"))
    _git(repo_copy, "commit", "-qam", "a one-step recipe")
    place = [f"data.root={tiny_cifar_root}", f"run_dir={tmp_path / 'run'}"]  # where, not what: still the recipe
    trained = run_train(repo_copy, *place)
    assert trained.returncode == 0, explain(trained)
    new = FINAL_SHA.search(trained.stdout)[1]
    old = sha256_file(repo_copy / "releases" / NAME / "model.safetensors")

    refused = run_train(repo_copy, *place, "--release", "--resume", "auto")
    assert_refused(refused, repo_copy, f"model.safetensors sha256 {old}", f"this run's weights are sha256 {new}",
                   at_start=False)

    forced = run_train(repo_copy, *place, "--release", "--resume", "auto", "--force")
    assert forced.returncode == 0, explain(forced)
    assert sha256_file(repo_copy / "releases" / NAME / "model.safetensors") == new
    assert hashlib.sha256((tmp_path / "run" / "export" / NAME / "model.safetensors").read_bytes()).hexdigest() == new
