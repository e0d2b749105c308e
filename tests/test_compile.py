"""`compile: true`: training/train.py trains through `torch.compile(model)` (inductor, which builds C++ kernels on the
CPU), checkpoints and exports the plain model's weights, and resumes after a kill bitwise exact.

Compiling costs a minute or more per run on a busy 2-core CPU (inductor's cache, in the system temp folder, shortens
later runs), so the runs are slow-marked: `pytest -m slow tests/test_compile.py`. Compiled and eager training are not
bitwise equal (their kernels round differently); `test_compiled_training_follows_eager_training_to_float_rounding`
holds the measured gap to a bound.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_concutmix
import test_training
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import CE_CIFAR10, ROOT, TIMEOUT, _env, checkpoint, digests, explain, train, train_command
from test_training_faults import KILLING_MAIN, STEPS_PER_SAVE

import ltzoo
from ltzoo.methods import TrainSet

sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package
from training import train as train_script  # noqa: E402
from training.provenance import extend_history  # noqa: E402

tiny_cifar_root = test_training.tiny_cifar_root  # the module-scoped fixture: a CIFAR-10 root with a small test split

# 80 images at batch 32: steps of 32, 32 and 16 images, so each run also recompiles for the smaller last batch
TWO_EPOCHS = ["data.subset=80", "data.batch_size=32", "epochs=2", "keep_checkpoints=2"]
FINAL = "checkpoints/epoch_0001"
# the largest weight difference between compiled and eager after the same 6 steps, measured on this machine's AVX2
# CPU in fp32 (4.6e-5 measured), with room for other CPUs' kernels
EAGER_GAP = 1e-3


def test_the_hardware_a_run_records_says_whether_it_ran_compiled():
    """A run resumed with `compile` switched starts a new history segment, so its card says which epochs ran
    compiled (training/provenance.py starts one where the hardware string changes)."""
    accelerator = Accelerator(cpu=True)
    eager, compiled = train_script.hardware(accelerator), train_script.hardware(accelerator, compiled=True)
    assert compiled == f"{eager}, torch.compile"
    history = extend_history([{"from_epoch": 1, "revision": "abc", "hardware": eager}], "abc", compiled, 3, 4)
    assert [segment["from_epoch"] for segment in history] == [1, 3]


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory: pytest.TempPathFactory, tiny_cifar_root: Path) -> tuple[Path, Path, str]:
    """Two epochs straight with `compile=true`, exported: (run dir, release folder, the run's stdout)."""
    tmp = tmp_path_factory.mktemp("compiled")
    result = train(CE_CIFAR10, *TWO_EPOCHS, "compile=true", f"data.root={tiny_cifar_root}", run_dir=tmp / "run",
                   release_dir=tmp / "releases")
    assert result.returncode == 0, explain(result)
    return tmp / "run", tmp / "releases" / "resnet32_ce_cifar10_lt.if100", result.stdout


@pytest.mark.slow
def test_a_compiled_run_logs_a_finite_loss_and_records_that_it_ran_compiled(compiled_run: tuple[Path, Path, str]):
    run_dir, _, _ = compiled_run
    events = EventAccumulator(str(run_dir / "tb" / "train"))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    assert len(losses) == 2 and np.isfinite(losses).all(), losses
    meta = json.loads((run_dir / FINAL / "meta.json").read_text())
    assert [segment["hardware"].endswith(", torch.compile") for segment in meta["history"]] == [True]


@pytest.mark.slow
def test_a_compiled_run_checkpoints_and_exports_the_plain_models_keys(compiled_run: tuple[Path, Path, str]):
    """No `_orig_mod.` prefix: the files load into the zoo model as an eager run's do."""
    run_dir, release, stdout = compiled_run
    plain = ltzoo.create_model("resnet32_ce_cifar10_lt.if100").state_dict().keys()
    assert load_file(run_dir / FINAL / "model.safetensors").keys() == plain
    exported = load_file(release / "model.safetensors")
    assert exported.keys() == plain
    model = ltzoo.create_model("resnet32_ce_cifar10_lt.if100", checkpoint_path=release / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in exported.items())
    assert train_script.weights_digest(model) == digests(stdout)[0][2]  # the release holds the trained weights


@pytest.mark.slow
def test_a_compiled_run_killed_after_its_first_epoch_resumes_to_bitwise_equal_weights(
        tmp_path: Path, tiny_cifar_root: Path, compiled_run: tuple[Path, Path, str]):
    """SIGKILLed as the second epoch's checkpoint starts to be written (the first is whole), then `--resume auto`:
    the resumed process compiles afresh and ends with the uninterrupted run's weights and optimizer state."""
    reference, _, reference_stdout = compiled_run
    run_dir = tmp_path / "run"
    args = [*TWO_EPOCHS, "compile=true", f"data.root={tiny_cifar_root}"]
    command = [sys.executable, "-c", KILLING_MAIN.format(root=str(ROOT)),
               *train_command(CE_CIFAR10, *args, run_dir=run_dir)[2:]]
    killed = subprocess.run(command, cwd=ROOT, env={**_env(), "LTZOO_TEST_KILL_AT": str(STEPS_PER_SAVE)},
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    assert (checkpoint(run_dir, 0) / "meta.json").is_file() and not checkpoint(run_dir, 1).exists()

    resumed = train(CE_CIFAR10, *args, "--resume", "auto", run_dir=run_dir)
    assert resumed.returncode == 0, explain(resumed)
    assert f"resumed from {checkpoint(run_dir, 0)}" in resumed.stdout, explain(resumed)
    assert digests(resumed.stdout)[0][2] == digests(reference_stdout)[0][2]
    ours, theirs = run_dir / FINAL, reference / FINAL
    assert (ours / "model.safetensors").read_bytes() == (theirs / "model.safetensors").read_bytes()
    assert test_training.optimizer_states_equal(ours / "optimizer.safetensors", theirs / "optimizer.safetensors")


@pytest.mark.slow
def test_compiled_training_follows_eager_training_to_float_rounding(tmp_path: Path, tiny_cifar_root: Path,
                                                                    compiled_run: tuple[Path, Path, str]):
    eager = train(CE_CIFAR10, *TWO_EPOCHS, "--no-export", f"data.root={tiny_cifar_root}", run_dir=tmp_path / "run")
    assert eager.returncode == 0, explain(eager)
    compiled = load_file(compiled_run[0] / FINAL / "model.safetensors")
    plain = load_file(tmp_path / "run" / FINAL / "model.safetensors")
    gap = max((compiled[k].double() - v.double()).abs().max().item() for k, v in plain.items())
    assert gap < EAGER_GAP


@pytest.mark.slow
def test_a_compiled_concutmix_step_trains_every_part_as_the_eager_step(one_torch_thread: None):
    """A method with training heads, reached through the compiled wrapper (`ltzoo.methods.base.unwrap`): the
    forced-CutMix step with rectification gives the eager step's loss and gradients to float rounding."""
    labels = np.repeat(np.arange(4), [6, 4, 3, 3])
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    train_set = TrainSet(labels, 8, 0, test_concutmix.MEAN, test_concutmix.STD, images=images)
    steps = []
    for compiled in (False, True):
        method = test_concutmix.method_for(train_set, cutmix_prob=1.0, warm_epoch=0)
        model = test_concutmix.tiny_model(method).to(memory_format=torch.channels_last)
        batch = test_concutmix.first_batch(method, train_set, epoch=1)
        loss, logs = method.training_step(torch.compile(model) if compiled else model, batch, epoch=1)
        loss.backward()
        steps.append((loss.detach(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}))
    (eager_loss, eager_grads), (loss, grads) = steps
    assert torch.isfinite(loss) and set(logs) == {"loss", "ce", "bcl"}
    assert grads.keys() == eager_grads.keys()
    for name in ("fc.weight", "train_heads.head.net.0.weight", "train_heads.head_fc.net.0.weight", "conv1.weight"):
        assert grads[name].abs().sum() > 0, name
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=0)
    for name, grad in grads.items():  # relative to each gradient's size: the step's direction is eager's
        assert (grad - eager_grads[name]).norm() <= 1e-3 * eager_grads[name].norm() + 1e-6, name
