"""The training queue: which lines are done, running, failed or waiting, read from the exports and the run dirs."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from training import train_queue as queue
from training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CE_IF100 = "training/configs/resnet32_ce_cifar10_lt.if100.yaml"
CE_IF50 = "training/configs/resnet32_ce_cifar10_lt.if50.yaml"


def write_queue(tmp_path: Path, *lines: str) -> list[queue.Item]:
    path = tmp_path / "queue.txt"
    path.write_text("# a comment\n\n" + "\n".join(lines) + "\n")
    return queue.read_queue(path)


def export(folder: Path, config: dict, measured: bool = True) -> None:
    folder.mkdir(parents=True)
    meta = {"config": config, **({"metrics": {"top1": 50.0}} if measured else {})}
    (folder / "config.json").write_text(json.dumps({"ltzoo": meta}))


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setattr(queue, "STATE_DIR", state)
    return state


def test_the_queue_file_splits_config_overrides_and_flags(tmp_path):
    (item,) = write_queue(tmp_path, f"{CE_IF50} seed=1 --release  # trailing comment")
    assert (item.config, item.overrides, item.flags) == (CE_IF50, ("seed=1",), ("--release",))


def test_a_published_release_made_by_its_recipe_is_done(tmp_path):
    items = write_queue(tmp_path, f"{CE_IF100} --release")
    assert queue.is_done(items, 0)  # releases/resnet32_ce_cifar10_lt.if100 was trained by this very config


def test_a_changed_config_is_not_done_by_the_release_of_the_recipe(tmp_path):
    items = write_queue(tmp_path, f"{CE_IF100} seed=7 run_dir={tmp_path}/run release_dir={tmp_path}/out")
    export(tmp_path / "out" / "resnet32_ce_cifar10_lt.if100",
           json.loads((ROOT / "releases/resnet32_ce_cifar10_lt.if100/config.json").read_text())["ltzoo"]["config"])
    assert not queue.is_done(items, 0)


def test_a_result_exported_by_the_same_config_is_done(tmp_path):
    line = f"{CE_IF50} seed=1 run_dir={tmp_path}/run release_dir={tmp_path}/out"
    items = write_queue(tmp_path, line)
    export(tmp_path / "out" / "resnet32_ce_cifar10_lt.if50", queue.item_config(items[0]).to_dict())
    assert queue.is_done(items, 0)


def test_an_export_not_yet_measured_is_not_done(tmp_path):
    items = write_queue(tmp_path, f"{CE_IF50} seed=1 run_dir={tmp_path}/run release_dir={tmp_path}/out")
    export(tmp_path / "out" / "resnet32_ce_cifar10_lt.if50", queue.item_config(items[0]).to_dict(), measured=False)
    assert not queue.is_done(items, 0)


def test_a_stage_without_export_is_done_when_the_stage_after_it_is(tmp_path):
    items = write_queue(tmp_path, f"{CE_IF50} run_dir={tmp_path}/stage1",
                        f"{CE_IF50} seed=1 run_dir={tmp_path}/run release_dir={tmp_path}/out")
    assert not queue.is_done(items, 0)
    export(tmp_path / "out" / "resnet32_ce_cifar10_lt.if50", queue.item_config(items[1]).to_dict())
    assert queue.is_done(items, 0)


def checkpoint(run_dir: Path, config: str, overrides: list[str], epoch: int, elapsed_s: float) -> None:
    cfg = load_config(ROOT / config, overrides)
    ckpt = run_dir / "checkpoints" / f"epoch_{epoch:04d}"
    ckpt.mkdir(parents=True)
    (ckpt / "meta.json").write_text(json.dumps({"epoch": epoch, "fingerprint": cfg.fingerprint(),
                                                "elapsed_s": elapsed_s}))


def test_a_stage_without_export_is_done_at_its_last_epoch(tmp_path):
    overrides = [f"run_dir={tmp_path}/stage1", "epochs=3"]
    items = write_queue(tmp_path, " ".join([CE_IF50, *overrides]))
    checkpoint(tmp_path / "stage1", CE_IF50, overrides, epoch=2, elapsed_s=30.0)
    assert queue.is_done(items, 0)


def test_status_shows_a_running_line_with_its_epoch_and_eta(tmp_path):
    overrides = [f"run_dir={tmp_path}/run", f"release_dir={tmp_path}/out"]
    items = write_queue(tmp_path, " ".join([CE_IF50, *overrides]))
    checkpoint(tmp_path / "run", CE_IF50, overrides, epoch=49, elapsed_s=2500.0)
    with open(tmp_path / "run" / "train.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242")
        lock.flush()
        (line,) = queue.status_lines(items)
    assert line.startswith("running") and "epoch 50/200, 50.0 s/epoch, ETA 2.1 h; pid 4242" in line


def test_the_eta_runs_at_the_rate_of_the_latest_epochs_not_the_runs_mean(tmp_path):
    overrides = [f"run_dir={tmp_path}/run", f"release_dir={tmp_path}/out"]
    items = write_queue(tmp_path, " ".join([CE_IF50, *overrides]))
    checkpoint(tmp_path / "run", CE_IF50, overrides, epoch=48, elapsed_s=7000.0)  # early epochs shared the machine
    checkpoint(tmp_path / "run", CE_IF50, overrides, epoch=49, elapsed_s=7050.0)
    (line,) = queue.status_lines(items)
    assert "epoch 50/200, 50.0 s/epoch, ETA 2.1 h" in line


def test_status_shows_a_stopped_run_as_paused_and_a_new_one_as_waiting(tmp_path):
    overrides = [f"run_dir={tmp_path}/run", f"release_dir={tmp_path}/out"]
    items = write_queue(tmp_path, " ".join([CE_IF50, *overrides]),
                        f"{CE_IF50} seed=3 run_dir={tmp_path}/r3 release_dir={tmp_path}/o3")
    checkpoint(tmp_path / "run", CE_IF50, overrides, epoch=9, elapsed_s=500.0)
    paused, waiting = queue.status_lines(items)
    assert paused.startswith("paused") and "epoch 10/200" in paused
    assert waiting.startswith("waiting")


def test_status_shows_why_a_line_failed(tmp_path, state_dir):
    items = write_queue(tmp_path, f"{CE_IF50} seed=3 run_dir={tmp_path}/r3 release_dir={tmp_path}/o3")
    state_dir.mkdir()
    (state_dir / "queue_failed.json").write_text(json.dumps({items[0].line: "exit 1 at 2026-12-07T05:00Z"}))
    (line,) = queue.status_lines(items)
    assert line.startswith("failed") and "exit 1 at 2026-12-07T05:00Z" in line


def test_a_line_with_a_bad_config_is_reported_not_raised(tmp_path):
    (line,) = queue.status_lines(write_queue(tmp_path, f"{CE_IF50} epochs=-1"))
    assert line.startswith("invalid") and "epochs" in line


def test_only_one_queue_runs_at_a_time(tmp_path):
    first = queue.runner_lock()
    try:
        assert queue.runner_lock() is None
        assert queue.runner_pid() == os.getpid()
        with pytest.raises(SystemExit, match="already running"):
            queue.run_queue(threads=1)
    finally:
        first.close()
    assert queue.runner_pid() is None


def test_the_repository_queue_lists_valid_configs_only():
    for item in queue.read_queue():
        queue.item_config(item)  # raises ConfigError for a bad line
        assert (ROOT / item.config).is_file()
