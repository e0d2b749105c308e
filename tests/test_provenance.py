"""training/provenance.py: a run records the code (git commit) and hardware that trained each stretch of epochs;
training/train.py's `earlier_stage`: a later stage (DSCL's probe) records what trained the checkpoint it starts from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training.config import load_config  # noqa: E402
from training.provenance import UNRECORDED, code_revision, describe_history, extend_history  # noqa: E402
from training.train import earlier_stage  # noqa: E402

STAGE1 = "training/configs/resnet32_dscl_cifar10_lt.if100.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one committed file."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return tmp_path


def head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout[:12]


def test_a_clean_checkout_is_its_commit(repo: Path):
    assert code_revision(repo) == head(repo)


def test_a_changed_tracked_file_marks_the_revision_dirty(repo: Path):
    (repo / "a.py").write_text("x = 2\n")
    assert code_revision(repo) == head(repo) + "+dirty"


def test_untracked_files_leave_the_revision_clean(repo: Path):
    (repo / "notes.txt").write_text("scratch\n")
    assert code_revision(repo) == head(repo)


def test_outside_a_git_checkout_the_revision_is_unknown(tmp_path: Path):
    assert code_revision(tmp_path) == "unknown"


# train.py's `hardware`: the same CPU, one with native bf16 and one resumed where `precision: auto` falls back to fp32
CPU1, CPU2 = "1 process(es) on x86_64 CPU, 2 threads, bf16", "1 process(es) on x86_64 CPU, 2 threads, fp32"


def test_a_fresh_run_starts_its_history_at_epoch_1():
    assert extend_history([], "abc", CPU1, 1, 200) == [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]


def test_resuming_with_the_same_code_and_hardware_adds_no_segment():
    history = [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]
    assert extend_history(history, "abc", CPU1, 81, 200) == history


def test_resuming_with_other_code_starts_a_segment_at_the_first_epoch_it_trains():
    assert extend_history([{"from_epoch": 1, "revision": "abc", "hardware": CPU1}], "def", CPU1, 81, 200) == [
        {"from_epoch": 1, "revision": "abc", "hardware": CPU1}, {"from_epoch": 81, "revision": "def", "hardware": CPU1}]


def test_resuming_on_other_hardware_or_in_another_precision_starts_a_segment():
    assert extend_history([{"from_epoch": 1, "revision": "abc", "hardware": CPU1}], "abc", CPU2, 81, 200)[-1] == {
        "from_epoch": 81, "revision": "abc", "hardware": CPU2}


def test_a_checkpoint_from_before_the_record_is_marked_unrecorded_up_to_the_resume():
    assert extend_history(None, "def", CPU1, 81, 200) == [
        {"from_epoch": 1, "revision": UNRECORDED}, {"from_epoch": 81, "revision": "def", "hardware": CPU1}]


def test_a_finished_run_resumed_to_export_under_other_code_adds_no_segment():
    history = [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]
    assert extend_history(history, "def", CPU2, 201, 200) == history


def test_the_description_gives_each_segment_its_epoch_range_code_and_hardware():
    history = [{"from_epoch": 1, "revision": UNRECORDED}, {"from_epoch": 81, "revision": "def", "hardware": CPU2}]
    assert describe_history(history, 200) == f"epochs 1–80: code `unrecorded`; epochs 81–200: code `def` on {CPU2}"


def stage1_checkpoint(tmp_path: Path, fingerprint: str) -> Path:
    """A stage-1 checkpoint's meta.json as train.py writes it after the last of 400 epochs (epochs count from 0)."""
    ckpt = tmp_path / "epoch_0399"
    ckpt.mkdir()
    (ckpt / "meta.json").write_text(json.dumps({
        "epoch": 399, "fingerprint": fingerprint, "config_path": STAGE1, "elapsed_s": 27000.04, "selection": None,
        "history": [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]}))
    return ckpt


def test_a_stage_started_from_a_checkpoint_records_its_recipe_epochs_time_and_history(tmp_path: Path):
    ckpt = stage1_checkpoint(tmp_path, load_config(Path(__file__).resolve().parents[1] / STAGE1).fingerprint())
    assert earlier_stage(str(ckpt)) == {"recipe": STAGE1, "epochs": 400, "train_seconds": 27000.0,
                                        "history": [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}],
                                        "as_recipe": True}


def test_a_checkpoint_trained_with_another_config_is_not_claimed_as_its_recipe(tmp_path: Path):
    assert earlier_stage(str(stage1_checkpoint(tmp_path, "0123456789abcdef")))["as_recipe"] is False


def test_a_stage_started_from_a_bare_weights_file_or_nothing_records_no_earlier_stage(tmp_path: Path):
    weights = tmp_path / "stage1.safetensors"
    weights.write_bytes(b"")
    assert earlier_stage(str(weights)) is None and earlier_stage(None) is None
