"""Faults around training/train.py's checkpoints: kills while a checkpoint is written, damaged checkpoint files, and a
planted pickle; each time `--resume auto` must end with weights bitwise equal to an uninterrupted run.

The runs are tiny (64 images, batch 32, 2 epochs, ~10 s each) on the real CIFAR-10 archive. A kill is injected by
running train.py's `main` in a subprocess whose `training.checkpoint._fsync` SIGKILLs the process at its n-th call:
every file, the folder and the rename of a checkpoint end in one, so the n-th call is the n-th step of the saves.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_training
from test_training import (
    CONFIGS,
    ROOT,
    TIMEOUT,
    _env,
    assert_stopped_early,
    checkpoint,
    digests,
    explain,
    train,
    train_command,
)

tiny_cifar_root = test_training.tiny_cifar_root  # the module-scoped fixture: a CIFAR-10 root with a small test split

CE_CIFAR10 = CONFIGS / "resnet32_ce_cifar10_lt.if100.yaml"
DSCL_CIFAR10 = CONFIGS / "resnet32_dscl_cifar10_lt.if100.yaml"
TWO_EPOCHS = ["data.subset=64", "data.batch_size=32", "epochs=2", "--no-export"]  # keep_checkpoints: not fingerprinted
FILES = ["meta.json", "model.safetensors", "optimizer.safetensors", "method.safetensors", "rng_0.safetensors"]
STEPS_PER_SAVE = 7  # fsyncs of one save: 4 files, meta.json, the folder, the parent after the rename
KILLING_MAIN = """
import os, signal, sys
sys.path.insert(0, {root!r})
from training import checkpoint, train
real, calls = checkpoint._fsync, []
def fsync(path):
    if len(calls) == int(os.environ["LTZOO_TEST_KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    calls.append(path)
    real(path)
checkpoint._fsync = fsync
train.main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_cifar_root: Path) -> tuple[Path, str]:
    """The reference: 2 epochs straight, both checkpoints kept; its run dir and its final-weights digest."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = train(CE_CIFAR10, *TWO_EPOCHS, "keep_checkpoints=2", f"data.root={tiny_cifar_root}", run_dir=run_dir)
    assert result.returncode == 0, explain(result)
    return run_dir, digests(result.stdout)[0][2]


def resume_matches(run_dir: Path, tiny_cifar_root: Path, reference: tuple[Path, str],
                   *args: str) -> subprocess.CompletedProcess:
    """`--resume auto` in `run_dir` ends with the reference run's final weights, bitwise."""
    resumed = train(CE_CIFAR10, *TWO_EPOCHS, *args, f"data.root={tiny_cifar_root}", "--resume", "auto",
                    run_dir=run_dir)
    assert resumed.returncode == 0, explain(resumed)
    assert "Traceback" not in resumed.stderr, explain(resumed)
    assert digests(resumed.stdout)[0][2] == reference[1], explain(resumed)
    final = "checkpoints/epoch_0001/model.safetensors"
    assert (run_dir / final).read_bytes() == (reference[0] / final).read_bytes()
    return resumed


def damaged_copy(reference: Path, run_dir: Path, name: str) -> Path:
    """A copy of the reference run whose last checkpoint has `name` cut to half its length."""
    shutil.copytree(reference, run_dir)
    file = checkpoint(run_dir, 1) / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return run_dir


def test_resume_auto_skips_a_torn_newest_meta_json_and_ends_bitwise_equal(tmp_path: Path, tiny_cifar_root: Path,
                                                                          uninterrupted: tuple[Path, str]):
    run_dir = damaged_copy(uninterrupted[0], tmp_path / "run", "meta.json")
    resumed = resume_matches(run_dir, tiny_cifar_root, uninterrupted)
    assert f"not resuming from {checkpoint(run_dir, 1)}: meta.json does not parse" in resumed.stdout
    assert f"resumed from {checkpoint(run_dir, 0)}" in resumed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES[1:])
def test_resume_auto_falls_back_past_each_damaged_file_to_bitwise_equal_weights(
        tmp_path: Path, tiny_cifar_root: Path, uninterrupted: tuple[Path, str], name: str):
    run_dir = damaged_copy(uninterrupted[0], tmp_path / "run", name)
    resumed = resume_matches(run_dir, tiny_cifar_root, uninterrupted)
    assert f"not resuming from {checkpoint(run_dir, 1)}: {name} is damaged" in resumed.stdout, explain(resumed)
    assert f"resumed from {checkpoint(run_dir, 0)}" in resumed.stdout, explain(resumed)


@pytest.mark.slow
@pytest.mark.parametrize("step", range(STEPS_PER_SAVE + 1))
def test_a_kill_at_each_step_of_a_checkpoint_write_resumes_to_bitwise_equal_weights(
        tmp_path: Path, tiny_cifar_root: Path, uninterrupted: tuple[Path, str], step: int):
    """Killed during the second (last) epoch's save: before any file, between files, before and after the rename,
    and (step 7) while the first epoch's checkpoint is being removed (keep_checkpoints=1)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-c", KILLING_MAIN.format(root=str(ROOT)),
               *train_command(CE_CIFAR10, *TWO_EPOCHS, "keep_checkpoints=1", f"data.root={tiny_cifar_root}",
                              run_dir=run_dir)[2:]]
    killed = subprocess.run(command, cwd=ROOT, env={**_env(), "LTZOO_TEST_KILL_AT": str(STEPS_PER_SAVE + step)},
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    resume_matches(run_dir, tiny_cifar_root, uninterrupted, "keep_checkpoints=1")


@pytest.mark.slow
def test_resuming_a_dscl_run_restores_its_queue_and_never_opens_a_planted_pickle(tmp_path: Path,
                                                                                 tiny_cifar_root: Path):
    """accelerate's load_state unpickled custom_checkpoint_0.pkl with weights_only=False; the queue is now a
    safetensors file, and a pickle planted in the checkpoint is never read."""
    run_dir, marker = tmp_path / "run", tmp_path / "executed"
    args = ["epochs=2", "data.subset=128", "data.batch_size=32", "method.queue_size=64", "keep_checkpoints=2",
            "--no-export", f"data.root={tiny_cifar_root}"]
    straight = train(DSCL_CIFAR10, *args, run_dir=run_dir)
    assert straight.returncode == 0, explain(straight)
    shutil.rmtree(checkpoint(run_dir, 1))

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl"):  # the pickles accelerate's load_state opened
        (checkpoint(run_dir, 0) / name).write_bytes(pickle.dumps(Payload()))
    resumed = train(DSCL_CIFAR10, *args, "--resume", "auto", run_dir=run_dir)
    assert not marker.exists(), "a planted pickle was executed"
    assert resumed.returncode == 0, explain(resumed)
    method_digest = "method state sha256"
    lines = [line for line in straight.stdout.splitlines() if method_digest in line or "final weights" in line]
    assert lines and lines == [line for line in resumed.stdout.splitlines()
                               if method_digest in line or "final weights" in line]


def test_the_documented_launch_command_shows_a_config_error_as_one_line_without_the_launchers_traceback(
        tmp_path: Path):
    """train.py's docstring gives the command; accelerate's launcher adds a CalledProcessError traceback after a
    non-zero exit unless the command quiets it."""
    documented = train_module_doc().split("`")[1]  # accelerate launch ... training/train.py --config <...> [k=v ...]
    launch = documented.split(" training/train.py")[0].split()
    assert launch[:2] == ["accelerate", "launch"]
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", *launch[2:], "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               *train_command(CE_CIFAR10, "data.batchsize=64", run_dir=tmp_path / "run")[1:]]
    result = subprocess.run(command, cwd=ROOT, env={**_env(), "ACCELERATE_USE_CPU": "1"}, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert "error: unknown key(s) ['data.batchsize']" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr and "CalledProcessError" not in result.stderr, explain(result)


def test_every_single_process_launch_the_readme_and_the_recipes_give_is_the_quiet_one():
    """The README's commands and the one every card records (`recipes.LAUNCH`) are what users copy."""
    from training import recipes

    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("accelerate launch")]
    assert readme and all(line.startswith("accelerate launch -q training/train.py") for line in readme)
    assert recipes.LAUNCH.startswith("accelerate launch -q training/train.py")


def train_module_doc() -> str:
    return ast.get_docstring(ast.parse((ROOT / "training" / "train.py").read_text()))


def test_a_dscl_run_with_fewer_images_than_one_batch_stops_before_training(tmp_path: Path, tiny_cifar_root: Path):
    """DSCL drops the last smaller batch: 16 images at batch 32 make no step at all."""
    result = train(DSCL_CIFAR10, "data.subset=16", "data.batch_size=32", f"data.root={tiny_cifar_root}",
                   "--no-export", run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "error: the 16 training images make no full batch of 32 for dscl",
                         "lower data.batch_size or raise data.subset")
