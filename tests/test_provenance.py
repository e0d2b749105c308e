"""training/provenance.py: a run records the code (git commit) and hardware that trained each stretch of epochs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training.provenance import UNRECORDED, code_revision, describe_history, extend_history  # noqa: E402


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


CPU1, CPU2 = "1 process(es) on x86_64 CPU, 1 threads", "1 process(es) on x86_64 CPU, 2 threads"


def test_a_fresh_run_starts_its_history_at_epoch_1():
    assert extend_history([], "abc", CPU1, 1, 200) == [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]


def test_resuming_with_the_same_code_and_hardware_adds_no_segment():
    history = [{"from_epoch": 1, "revision": "abc", "hardware": CPU1}]
    assert extend_history(history, "abc", CPU1, 81, 200) == history


def test_resuming_with_other_code_starts_a_segment_at_the_first_epoch_it_trains():
    assert extend_history([{"from_epoch": 1, "revision": "abc", "hardware": CPU1}], "def", CPU1, 81, 200) == [
        {"from_epoch": 1, "revision": "abc", "hardware": CPU1}, {"from_epoch": 81, "revision": "def", "hardware": CPU1}]


def test_resuming_on_other_hardware_starts_a_segment():
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
