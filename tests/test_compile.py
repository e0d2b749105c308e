"""`compile: true`: training/train.py trains through `torch.compile(model)` (inductor, which builds C++ kernels on the
CPU), checkpoints and exports the plain model's weights, and resumes after a kill bitwise exact.

Compiling costs a minute or more per run on a busy 2-core CPU (inductor's cache, in the system temp folder, shortens
later runs), so the runs are slow-marked: `pytest -m slow tests/test_compile.py`. Compiled and eager training are not
bitwise equal (their kernels round differently): the tests bound the gap by eager's own between memory formats.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import test_concutmix
import test_training
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_training import (
    CE_CIFAR10,
    ROOT,
    TIMEOUT,
    _env,
    checkpoint,
    digests,
    explain,
    train,
    train_command,
    two_gloo_processes,
)
from test_training_faults import KILLING_MAIN, STEPS_PER_SAVE

import ltzoo
from ltzoo.methods import TrainSet
from ltzoo.scheduler import build_scheduler

sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package
from training import train as train_script  # noqa: E402
from training.builders import build_run, train_step  # noqa: E402
from training.config import load_config  # noqa: E402
from training.provenance import extend_history  # noqa: E402

tiny_cifar_root = test_training.tiny_cifar_root  # the module-scoped fixture: a CIFAR-10 root with a small test split

# 80 images at batch 32: steps of 32, 32 and 16 images, so each run also recompiles for the smaller last batch
TWO_EPOCHS = ["data.subset=80", "data.batch_size=32", "epochs=2", "keep_checkpoints=2"]
FINAL = "checkpoints/epoch_0001"


def test_the_hardware_a_run_records_says_whether_it_ran_compiled():
    """A run resumed with `compile` switched starts a new history segment, so its card says which epochs ran
    compiled (training/provenance.py starts one where the hardware string changes)."""
    accelerator = Accelerator(cpu=True)
    eager, compiled = train_script.hardware(accelerator), train_script.hardware(accelerator, compiled=True)
    assert compiled == f"{eager}, torch.compile"
    history = extend_history([{"from_epoch": 1, "revision": "abc", "hardware": eager}], "abc", compiled, 3, 4)
    assert [segment["from_epoch"] for segment in history] == [1, 3]


@pytest.mark.parametrize("backend", ["inductor", "INDUCTOR"])
def test_the_launchers_inductor_backend_turns_compile_on(backend: str):
    cfg = load_config(CE_CIFAR10)
    train_script.apply_launcher_compile(cfg, backend)
    assert cfg.compile


@pytest.mark.parametrize("backend", [None, "", "no", "NO"])
def test_without_a_launcher_backend_the_config_decides(backend: str | None):
    cfg = load_config(CE_CIFAR10)
    train_script.apply_launcher_compile(cfg, backend)
    assert not cfg.compile
    assert load_config(CE_CIFAR10, ["compile=true"]).compile


def test_a_launcher_backend_other_than_inductor_stops_the_run_in_one_line(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(train_script.LAUNCHER_DYNAMO, "aot_eager")
    with pytest.raises(SystemExit, match=r"^error: accelerate launch --dynamo_backend aot_eager: ltzoo compiles with "
                                         r"inductor only; pass --dynamo_backend inductor, or compile=true$"):
        train_script.main(["--config", str(CE_CIFAR10), f"run_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()


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
    a new process (its own compile, or inductor's cache of it) ends with the uninterrupted run's weights and
    optimizer state."""
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
def test_accelerate_launchs_inductor_backend_trains_compiled_and_saves_the_plain_models_keys(tmp_path: Path,
                                                                                            tiny_cifar_root: Path):
    """`accelerate launch --dynamo_backend inductor` (or an accelerate config that sets it) used to make accelerate
    compile the model in `prepare`, and every checkpoint and export then named its weights `_orig_mod.<name>`."""
    run_dir = tmp_path / "run"
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "inductor",
               *train_command(CE_CIFAR10, *test_training.TINY_CIFAR, f"data.root={tiny_cifar_root}",
                              run_dir=run_dir, release_dir=tmp_path / "releases")[1:]]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, explain(result)
    plain = ltzoo.create_model("resnet32_ce_cifar10_lt.if100").state_dict().keys()
    assert load_file(checkpoint(run_dir, 0) / "model.safetensors").keys() == plain
    release = tmp_path / "releases" / "resnet32_ce_cifar10_lt.if100"
    assert load_file(release / "model.safetensors").keys() == plain
    meta = json.loads((checkpoint(run_dir, 0) / "meta.json").read_text())
    assert meta["history"][0]["hardware"].endswith(", torch.compile")


@pytest.mark.slow
def test_two_gloo_processes_train_compiled_to_the_same_weights(tmp_path: Path, tiny_cifar_root: Path):
    """`torch.compile` over the DistributedDataParallel wrapper (dynamo splits the graph at DDP's gradient buckets),
    as test_training's two-process run launches it."""
    _, lines = two_gloo_processes(tmp_path / "run", tiny_cifar_root, "compile=true")
    assert lines[0][2] == lines[1][2]
    assert load_file(checkpoint(tmp_path / "run", 1) / "model.safetensors").keys() == \
        ltzoo.create_model("resnet32_ce_cifar10_lt.if100").state_dict().keys()


# --- compiled against eager: float rounding, as large as eager's own between memory formats ---------------------------
# Measured here (AVX2, fp32, one thread): after the first CE step the largest weight difference from eager
# (channels_last) is 5.9e-5 compiled and 6.1e-5 eager in NCHW; rounding differences grow as a tiny random-init run
# trains (2.7e-2 on the parameters after 6 steps, either way). The bound: never more than ROUNDING_FACTOR times
# eager's own memory-format gap.
ROUNDING_FACTOR = 3.0
VARIANTS = ("eager", "compiled", "nchw")  # eager channels_last (the configs' default), compiled, eager NCHW


@pytest.fixture
def fresh_dynamo(one_torch_thread: None) -> Iterator[None]:
    """Each model compiled afresh: dynamo's caches emptied before and after (a full cache would run it eagerly)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def ce_trajectory(variant: str, data_root: Path) -> list[dict[str, torch.Tensor]]:
    """The weights after each of the 6 steps of TWO_EPOCHS of CE, built and stepped as train.py builds and steps."""
    layout = ["channels_last=false"] if variant == "nchw" else []
    cfg = load_config(CE_CIFAR10, [*TWO_EPOCHS, f"data.root={data_root}", *layout])
    set_seed(cfg.seed)
    run = build_run(cfg, torch.device("cpu"))
    schedule = build_scheduler(cfg.schedule, cfg.optim.lr, cfg.epochs)
    train_model = torch.compile(run.model) if variant == "compiled" else run.model
    states = []
    for epoch in range(cfg.epochs):
        run.loader.set_epoch(epoch)
        run.method.on_epoch_start(epoch)
        train_model.train()
        for i, batch in enumerate(run.loader):
            train_step(run.method, train_model, run.optimizer, batch, epoch, schedule.lr_at(epoch, i, len(run.loader)))
            states.append({k: v.detach().double().clone() for k, v in run.model.state_dict().items()})
    return states


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
def test_compiled_ce_training_departs_from_eager_no_more_than_eager_does_between_memory_formats(
        fresh_dynamo: None, tiny_cifar_root: Path):
    eager, compiled, nchw = (ce_trajectory(variant, tiny_cifar_root) for variant in VARIANTS)
    assert len(eager) == 6
    for step, (reference, ours, other_layout) in enumerate(zip(eager, compiled, nchw)):
        gap, layout_gap = largest_difference(ours, reference), largest_difference(other_layout, reference)
        assert gap <= ROUNDING_FACTOR * layout_gap, f"step {step}: {gap:.3e} against {layout_gap:.3e}"
    assert largest_difference(compiled[0], eager[0]) < 1e-3  # the first step: nothing to amplify rounding yet


@pytest.mark.slow
def test_a_compiled_concutmix_step_trains_every_part_as_the_eager_step(fresh_dynamo: None):
    """A method with training heads, reached through the compiled wrapper (`ltzoo.methods.base.unwrap`): the
    forced-CutMix step with rectification gives the eager step's loss and gradients to float rounding (gradients of
    biases that a BatchNorm follows are rounding noise about zero: compared whole, not one by one)."""
    labels = np.repeat(np.arange(4), [6, 4, 3, 3])
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    train_set = TrainSet(labels, 8, 0, test_concutmix.MEAN, test_concutmix.STD, images=images)
    steps = {}
    for variant in VARIANTS:
        method = test_concutmix.method_for(train_set, cutmix_prob=1.0, warm_epoch=0)
        model = test_concutmix.tiny_model(method)
        batch = test_concutmix.first_batch(method, train_set, epoch=1)
        layout = torch.contiguous_format if variant == "nchw" else torch.channels_last
        model = model.to(memory_format=layout)
        batch = batch._replace(images=tuple(view.contiguous(memory_format=layout) for view in batch.images))
        loss, logs = method.training_step(torch.compile(model) if variant == "compiled" else model, batch, epoch=1)
        loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        steps[variant] = loss.detach(), logs, grads
    (eager_loss, _, eager_grads), (loss, logs, grads), (_, _, nchw_grads) = (steps[v] for v in VARIANTS)
    assert torch.isfinite(loss) and set(logs) == {"loss", "ce", "bcl"}
    assert grads.keys() == eager_grads.keys()
    for name in ("fc.weight", "train_heads.head.net.0.weight", "train_heads.head_fc.net.0.weight", "conv1.weight"):
        assert grads[name].abs().sum() > 0, name
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=0)
    flat = {variant: torch.cat([g.flatten() for g in step.values()])
            for variant, step in (("eager", eager_grads), ("compiled", grads), ("nchw", nchw_grads))}
    gap, layout_gap = ((flat[v] - flat["eager"]).norm().item() for v in ("compiled", "nchw"))
    assert gap <= ROUNDING_FACTOR * layout_gap and gap <= 1e-2 * flat["eager"].norm().item()
