"""training/train.py end to end, run as the real script in subprocesses on tiny real data.

Every run writes into temporary `run_dir` / `release_dir` overrides, so nothing touches ~/.cache/ltzoo/runs or
releases/. CIFAR runs read the real (shared) CIFAR-10 training archive; their test split is a 200-image archive cut
from the real test archive (`tiny_cifar_root`), so the end-of-run evaluation and `ltzoo validate` stay cheap.

Runs that train for real (up to minutes on a busy 2-core CPU) are marked slow: `pytest -m slow tests/test_training.py`.
The checks that a bad run stops before training run by default (the resume check trains one step first, ~13 s).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import lossless_refs, shared_file
from PIL import Image
from safetensors.torch import load_file

import ltzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training import checkpoint as checkpoint_state  # noqa: E402
from training.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "training" / "train.py"
CONFIGS = ROOT / "training" / "configs"
CE_CIFAR10 = CONFIGS / "resnet32_ce_cifar10_lt.if100.yaml"
LDAM_DRW_CIFAR10 = CONFIGS / "resnet32_ldam_drw_cifar10_lt.if100.yaml"
CE_IMAGENET = CONFIGS / "resnet50_ce_imagenet_lt.e100.yaml"
CE_PLACES = CONFIGS / "resnet152_ce_places_lt.e30.yaml"
TINY_CIFAR = ["data.subset=16", "data.batch_size=16", "epochs=1"]  # one optimisation step
DIGEST = re.compile(r"\[rank (\d+)/(\d+)\] final weights sha256 ([0-9a-f]{64}); global batch (\d+) x (\d+)")
TIMEOUT = 900


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    env.pop("LTZOO_DATA", None)
    return env


def train_command(config: Path, *args: str, run_dir: Path, release_dir: Path | None = None) -> list[str]:
    """`python training/train.py --config <config> <args> run_dir=<run_dir> release_dir=<release_dir>`."""
    release = release_dir if release_dir is not None else run_dir.parent / "releases"
    return [sys.executable, str(TRAIN), "--config", str(config), *args, f"run_dir={run_dir}", f"release_dir={release}"]


def train(config: Path, *args: str, run_dir: Path, release_dir: Path | None = None,
          timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(config, *args, run_dir=run_dir, release_dir=release_dir), cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def checkpoint(run_dir: Path, epoch: int) -> Path:
    return run_dir / "checkpoints" / f"epoch_{epoch:04d}"


def is_complete(ckpt: Path) -> bool:
    return (ckpt / "meta.json").is_file()


def explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"


def digests(output: str) -> list[tuple[int, int, str, int, int]]:
    """The `[rank r/n] final weights sha256 ...; global batch b x n` lines: (rank, n, digest, b, n)."""
    return [(int(r), int(n), d, int(b), int(m)) for r, n, d, b, m in DIGEST.findall(output)]


def optimizer_states_equal(a: Path, b: Path) -> bool:
    """Bitwise comparison of two checkpoints' `optimizer.safetensors` (SGD state dicts)."""
    sa, sb = (checkpoint_state.load_state(p) for p in (a, b))
    if sa["param_groups"] != sb["param_groups"] or sa["state"].keys() != sb["state"].keys():
        return False
    return all(sa["state"][k].keys() == sb["state"][k].keys()
               and all(torch.equal(sa["state"][k][n], sb["state"][k][n]) for n in sa["state"][k])
               for k in sa["state"])


@pytest.fixture(scope="module")
def tiny_cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 root: the real training archive (symlinked) and the first 20 real test images of each class.

    The small test archive gets a fixed mtime, so its decoded-image cache entry is the same in every session.
    """
    train_archive = shared_file("cifar10_train_jpeg.npz")
    test_archive = shared_file("cifar10_test_jpeg.npz")
    root = tmp_path_factory.mktemp("cifar10")
    (root / train_archive.name).symlink_to(train_archive)
    with np.load(test_archive) as z:
        keep = np.concatenate([np.flatnonzero(z["y"] == c)[:20] for c in range(10)])
        jpeg, offsets = z["jpeg"], z["offsets"]  # each z[...] re-reads the array: read once
        jpegs = [jpeg[offsets[i]:offsets[i + 1]] for i in keep]
        small = {"jpeg": np.concatenate(jpegs), "offsets": np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]),
                 "y": z["y"][keep], "class_names": z["class_names"]}
    np.savez(root / test_archive.name, **small)
    os.utime(root / test_archive.name, (1_700_000_000, 1_700_000_000))
    return root


def write_split_root(root: Path, folder: str, num_images: int, num_classes: int, size: int = 64,
                     every_class: bool = False) -> Path:
    """A split-file image root: real 32-px CIFAR images upscaled to `size` px JPEGs under `train/`, and the
    `<folder>_train.txt` / `<folder>_test.txt` / `<folder>_val.txt` lists (`relative/path label`) in the root itself.

    `every_class` lists one training line per class (line k: class k, image k mod num_images), so every class count
    is positive, as on the real benchmark; train on the first images with `data.subset`.
    """
    images = lossless_refs()["cifar10_train_first4000_x"][:num_images]
    files = []
    for i, image in enumerate(images):
        relative = f"train/img_{i:03d}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((size, size), Image.BICUBIC).save(root / relative, quality=90)
        files.append(relative)
    if every_class:
        lines = [f"{files[k % num_images]} {k}\n" for k in range(num_classes)]
    else:
        lines = [f"{relative} {(i * 37) % num_classes}\n" for i, relative in enumerate(files)]
    (root / f"{folder}_train.txt").write_text("".join(lines))
    (root / f"{folder}_test.txt").write_text("".join(lines[: max(2, num_images // 2)]))
    (root / f"{folder}_val.txt").write_text("".join(lines[num_images // 2: num_images]))
    return root


# --- a run that cannot train stops at once, before any training ----------------------------------------------------

def assert_stopped_early(result: subprocess.CompletedProcess, run_dir: Path, *needles: str) -> None:
    assert result.returncode != 0, explain(result)
    assert "Traceback" not in result.stderr, explain(result)
    assert re.search(r"^error: ", result.stderr, re.MULTILINE), explain(result)
    for needle in needles:
        assert needle in result.stderr, explain(result)
    assert "iterations/epoch" not in result.stdout, explain(result)
    assert not (run_dir / "checkpoints").exists()


def test_a_bad_method_option_stops_with_its_one_line_error_before_any_data_is_opened(tmp_path: Path):
    """The data root is an empty folder (an explicit root is the only place looked): a data load would stop with
    "split not found", so the option's error shows that no dataset was opened."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = train(CONFIGS / "resnet32_bcl_cifar10_lt.if100.yaml", "method.temperature=-1", f"data.root={empty}",
                   "--no-export", run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "error: method 'bcl': temperature must be > 0, got -1\n")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "run").exists(), explain(result)


def test_unknown_config_key_stops_before_training(tmp_path: Path):
    result = train(CE_CIFAR10, "data.batchsize=64", "--no-export", run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "'data.batchsize'", "known keys", "'batch_size'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("config", "offline"), [(CE_CIFAR10, []), (CE_PLACES, ["model.pretrained_backbone=false"])],
                         ids=["cifar", "places"])
def test_missing_data_dir_stops_before_training(tmp_path: Path, config: Path, offline: list[str]):
    result = train(config, "data.root=/nonexistent", *offline, "--no-export", run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "/nonexistent")


def test_split_file_benchmark_without_a_data_dir_stops_before_training(tmp_path: Path):
    """The Places-LT lists are in the shared data, so only the image root is missing: it must still stop early."""
    result = train(CE_PLACES, "data.root=null", "model.pretrained_backbone=false", "--no-export",
                   run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "data.root")


def test_image_root_without_the_listed_images_stops_before_training(tmp_path: Path):
    shared_file("splits/Places_LT/Places_LT_train.txt")  # the list names the images that are missing
    (tmp_path / "images").mkdir()
    result = train(CE_PLACES, f"data.root={tmp_path / 'images'}", "model.pretrained_backbone=false", "--no-export",
                   run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "does not exist")


def test_selecting_on_a_val_split_cifar_lacks_stops_before_training(tmp_path: Path, tiny_cifar_root: Path):
    result = train(CE_CIFAR10, "select=val", f"data.root={tiny_cifar_root}", "--no-export", run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "select: val needs a val split", "use select: last")


def test_unknown_method_option_stops_before_training(tmp_path: Path, tiny_cifar_root: Path):
    result = train(CE_CIFAR10, "method.drw_begin=1", f"data.root={tiny_cifar_root}", "--no-export",
                   run_dir=tmp_path / "run")
    assert_stopped_early(result, tmp_path / "run", "drw_begin")


def test_resume_from_a_checkpoint_of_a_different_config_stops_before_training(tmp_path: Path,
                                                                              tiny_cifar_root: Path):
    run_dir, data = tmp_path / "run", f"data.root={tiny_cifar_root}"
    made = train(CE_CIFAR10, *TINY_CIFAR, data, "optim.lr=0.1", "--no-export", run_dir=run_dir)
    assert made.returncode == 0, explain(made)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}

    result = train(CE_CIFAR10, *TINY_CIFAR, data, "optim.lr=0.05", "--resume", "auto", "--no-export",
                   run_dir=run_dir)
    assert result.returncode != 0, explain(result)
    assert "Traceback" not in result.stderr, explain(result)
    assert f"cannot resume from {checkpoint(run_dir, 0)}" in result.stderr, explain(result)
    assert "different config" in result.stderr, explain(result)
    assert "iterations/epoch" not in result.stdout
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before  # nothing trained, saved or removed


def test_a_second_run_into_the_same_run_dir_stops_before_training(tmp_path: Path, tiny_cifar_root: Path):
    """While one process trains into a run_dir (it holds run_dir/train.lock), another run of it is refused."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / "train.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        result = train(CE_CIFAR10, *TINY_CIFAR, f"data.root={tiny_cifar_root}", "--resume", "auto", "--no-export",
                       run_dir=run_dir)
    assert_stopped_early(result, run_dir, "another process (pid 4242)", str(run_dir))


# --- training runs ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_after_a_kill_is_bitwise_exact(tmp_path: Path, tiny_cifar_root: Path):
    """A: 3 epochs straight. B: the same run SIGKILLed at a random moment after its first checkpoint, then
    `--resume auto`. LDAM-DRW with drw_start=1 puts the DRW switch inside the run. Final weights and optimizer
    state must be bitwise equal."""
    args = [f"data.root={tiny_cifar_root}", "data.subset=384", "data.batch_size=64", "epochs=3",
            "method.drw_start=1", "--no-export"]
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    a = train(LDAM_DRW_CIFAR10, *args, run_dir=run_a)
    assert a.returncode == 0, explain(a)

    delay = random.uniform(0.0, 3.0)
    with open(tmp_path / "b.log", "w") as log:
        b = subprocess.Popen(train_command(LDAM_DRW_CIFAR10, *args, run_dir=run_b), cwd=ROOT, env=_env(),
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not is_complete(checkpoint(run_b, 0)) and b.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
            log_text = (tmp_path / "b.log").read_text()
            assert b.poll() is None, f"run B ended before the kill ({delay=:.2f} s):\n{log_text}"
            b.send_signal(signal.SIGKILL)
        finally:
            b.kill()
            b.wait()
    assert b.returncode == -signal.SIGKILL
    assert is_complete(checkpoint(run_b, 0)) and not is_complete(checkpoint(run_b, 2)), f"{delay=:.2f} s"

    resumed = train(LDAM_DRW_CIFAR10, *args, "--resume", "auto", run_dir=run_b)
    assert resumed.returncode == 0, explain(resumed)
    assert "resumed from" in resumed.stdout, explain(resumed)
    final_a, final_b = checkpoint(run_a, 2), checkpoint(run_b, 2)
    assert (final_a / "model.safetensors").read_bytes() == (final_b / "model.safetensors").read_bytes(), \
        f"weights differ after a kill {delay:.2f} s after the first checkpoint"
    assert optimizer_states_equal(final_a / "optimizer.safetensors", final_b / "optimizer.safetensors")
    assert [d[2] for d in digests(a.stdout)] == [d[2] for d in digests(resumed.stdout)]
    meta_b = json.loads((final_b / "meta.json").read_text())
    assert [segment["from_epoch"] for segment in meta_b["history"]] == [1]  # same code and hardware throughout


def two_gloo_processes(run_dir: Path, data_root: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, list]:
    """Two epochs of CE on 256 images at global batch 64 in two CPU processes over gloo; (the finished run, each
    rank's sorted digest line), after checking both ranks reported."""
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               *train_command(CE_CIFAR10, "epochs=2", "data.subset=256", "data.batch_size=64", *overrides,
                              f"data.root={data_root}", "--no-export", run_dir=run_dir)[1:]]
    result = subprocess.run(command, cwd=ROOT, env={**_env(), "ACCELERATE_USE_CPU": "1"}, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, explain(result)
    lines = sorted(digests(result.stdout + result.stderr))
    assert [(rank, world) for rank, world, *_ in lines] == [(0, 2), (1, 2)], explain(result)
    return result, lines


@pytest.mark.slow
def test_two_gloo_processes_train_the_same_weights_with_the_configs_global_batch(tmp_path: Path,
                                                                                  tiny_cifar_root: Path):
    """Two CPU processes over gloo. With accelerate 1.x `accelerate launch --cpu --num_processes 2` starts ONE
    process (its simple launcher ignores the count); the torchrun launcher (`--multi_gpu`) with ACCELERATE_USE_CPU=1
    gives two processes that Accelerator runs as MULTI_CPU over gloo."""
    result, lines = two_gloo_processes(tmp_path / "run", tiny_cifar_root)
    assert lines[0][2] == lines[1][2]  # DDP kept both replicas bitwise identical
    assert [(per_rank, n) for *_, per_rank, n in lines] == [(32, 2), (32, 2)]  # 32 x 2 = the config's 64
    assert "4 iterations/epoch" in result.stdout, explain(result)  # 256 images / global batch 64
    assert is_complete(checkpoint(tmp_path / "run", 1))


LARGE_SCALE = sorted(p for p in CONFIGS.glob("*.yaml") if "cifar" not in p.name and not p.name.endswith(".probe.yaml"))
SPLIT_FOLDERS = {"imagenet_lt": ("ImageNet_LT", 1000), "inat2018": ("iNaturalist18", 8142),
                 "places_lt": ("Places_LT", 365)}


def tiny_split_run(config: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """One epoch of 8 real images at batch 4 (two optimisation steps) on a split-file root for the config's dataset,
    whose list names every class (class counts are what methods see); an ImageNet-initialised backbone (Places-LT)
    starts from random weights, as nothing can be downloaded here."""
    cfg = load_config(config)
    folder, num_classes = SPLIT_FOLDERS[cfg.data.dataset]
    data = write_split_root(tmp_path / "data", folder, num_images=8, num_classes=num_classes, every_class=True)
    offline = ["model.pretrained_backbone=false"] if cfg.model.get("pretrained_backbone") else []
    return train(config, "epochs=1", f"data.root={data}", "data.subset=8", "data.batch_size=4", "data.num_workers=0",
                 *offline, *args, run_dir=tmp_path / "run", release_dir=tmp_path / "releases")


@pytest.mark.slow
@pytest.mark.parametrize("config", LARGE_SCALE, ids=lambda p: p.stem)
def test_large_scale_config_trains_two_steps_on_a_split_file_root(tmp_path: Path, config: Path):
    result = tiny_split_run(config, tmp_path, "--no-export")
    assert result.returncode == 0, explain(result)
    assert "2 iterations/epoch" in result.stdout, explain(result)  # 8 images / batch 4
    assert is_complete(checkpoint(tmp_path / "run", 0))


@pytest.mark.slow
def test_dscl_imagenet_lt_probe_trains_on_stage1_weights_and_releases_the_val_selected_epoch(tmp_path: Path):
    stage1 = tiny_split_run(CONFIGS / "resnet50_dscl_imagenet_lt.e200.yaml", tmp_path / "stage1")
    assert stage1.returncode == 0, explain(stage1)
    probe = tiny_split_run(CONFIGS / "resnet50_dscl_imagenet_lt.e200.probe.yaml", tmp_path / "probe", "epochs=2",
                           f"method.init_from={checkpoint(tmp_path / 'stage1' / 'run', 0)}")
    assert probe.returncode == 0, explain(probe)
    assert len(re.findall(r"^epoch \d+: val top-1", probe.stdout, re.MULTILINE)) == 2, explain(probe)
    meta = json.loads((tmp_path / "probe" / "releases" / "resnet50_dscl_imagenet_lt.e200" / "config.json")
                      .read_text())["ltzoo"]
    assert meta["selection"]["on"] == "val" and meta["selection"]["epoch"] in (1, 2)
    assert meta["metrics"]["num_images"] == 4  # measured on the test list, after the selection


@pytest.mark.slow
def test_select_val_exports_the_epoch_with_the_best_val_top1(tmp_path: Path):
    """Three epochs evaluated on the val list; the release holds the weights of the best one (not the last), and
    its config.json and card say which epoch and why. Earlier selections are pruned from the run dir."""
    data = write_split_root(tmp_path / "data", "ImageNet_LT", num_images=8, num_classes=1000)
    run_dir, releases = tmp_path / "run", tmp_path / "releases"
    result = train(CE_IMAGENET, "epochs=3", "eval_every=1", "select=val", "optim.lr=0.5", f"data.root={data}",
                   "data.batch_size=4", "data.num_workers=0", run_dir=run_dir, release_dir=releases)
    assert result.returncode == 0, explain(result)
    val_top1 = [float(v) for v in re.findall(r"^epoch \d+: val top-1 ([0-9.]+)", result.stdout, re.MULTILINE)]
    assert len(val_top1) == 3 and "test top-1" not in result.stdout, explain(result)
    best = 1 + max(range(3), key=lambda i: (val_top1[i], -i))  # the first epoch with the highest val top-1

    release = releases / "resnet50_ce_imagenet_lt.e100"
    meta = json.loads((release / "config.json").read_text())["ltzoo"]
    assert meta["selection"]["on"] == "val" and meta["selection"]["epoch"] == best
    assert f"epoch {best} of 3, the best top-1 on the val split" in (release / "README.md").read_text()
    selected = run_dir / "selected" / f"epoch_{best:04d}.safetensors"
    assert sorted((run_dir / "selected").iterdir()) == [selected]
    exported = load_file(release / "model.safetensors")
    assert all(torch.equal(exported[k], v) for k, v in load_file(selected).items() if k in exported)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_cifar_root: Path) -> tuple[Path, str]:
    """A one-step CE run exported into a temporary release_dir: (release folder, the run's stdout)."""
    tmp = tmp_path_factory.mktemp("export")
    result = train(CE_CIFAR10, *TINY_CIFAR, f"data.root={tiny_cifar_root}", run_dir=tmp / "run",
                   release_dir=tmp / "releases")
    assert result.returncode == 0, explain(result)
    return tmp / "releases" / "resnet32_ce_cifar10_lt.if100", result.stdout


@pytest.mark.slow
def test_export_writes_a_release_folder(exported: tuple[Path, str]):
    release, stdout = exported
    assert f"release written to {release}" in stdout
    assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in release.iterdir()}


@pytest.mark.slow
def test_export_records_measured_metrics_and_how_to_reproduce_them(exported: tuple[Path, str]):
    release, _ = exported
    meta = json.loads((release / "config.json").read_text())["ltzoo"]
    assert {"top1", "many", "medium", "few"} <= set(meta["metrics"])
    assert 0.0 <= meta["metrics"]["top1"] <= 100.0
    assert [segment["from_epoch"] for segment in meta["history"]] == [1]
    assert meta["history"][0]["revision"] and meta["history"][0]["hardware"]
    assert meta["metrics"]["num_images"] == 200  # measured on the run's data root, not somewhere else
    # outside the repository, the path is the card's folder's own file: exports name no machine path
    assert meta["validate_command"] == "ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint model.safetensors"
    assert meta["train_command"] == (  # the overrides it was trained with, not where this machine keeps things
        "accelerate launch -q training/train.py --config training/configs/resnet32_ce_cifar10_lt.if100.yaml "
        "data.subset=16 data.batch_size=16 epochs=1")


@pytest.mark.slow
def test_export_model_card_carries_the_cifar10_jpeg_note(exported: tuple[Path, str]):
    release, _ = exported
    card = (release / "README.md").read_text()
    assert "JPEG (quality 75)" in card
    assert "ltzoo validate resnet32_ce_cifar10_lt.if100" in card


@pytest.mark.slow
def test_an_exported_card_outside_releases_loads_its_own_weights_file(exported: tuple[Path, str]):
    release, _ = exported
    assert 'checkpoint_path="model.safetensors"' in (release / "README.md").read_text()


@pytest.mark.slow
def test_exported_weights_load_with_create_model_and_are_the_trained_ones(exported: tuple[Path, str]):
    release, stdout = exported
    model = ltzoo.create_model("resnet32_ce_cifar10_lt.if100", checkpoint_path=release / "model.safetensors")
    saved = load_file(release / "model.safetensors")
    state = model.state_dict()
    assert saved.keys() <= state.keys()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    sys.path.insert(0, str(ROOT))
    from training.train import weights_digest
    assert weights_digest(model) == digests(stdout)[0][2]  # the release holds exactly the trained weights
