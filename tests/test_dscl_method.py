"""DSCL's two stages (ltzoo.methods.dscl, ltzoo.augment.dscl_crops;
docs/methods/dscl.md §6.5, §6.6, §6.8, §6.9, §6.11, §6.13): ROIAlign teachers, global + patch crops, one stage-1 step
without a process group, the queue seen by PBSD, the stage-2 probe's loading, freezing and BN, the configs, and (slow)
two processes and the two-stage smoke run through training/train.py."""

from __future__ import annotations

import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures import shared_file
from PIL import Image
from safetensors.torch import save_file
from torchvision.transforms.v2 import functional as TF

import ltzoo
from ltzoo import registry
from ltzoo.augment.dscl_crops import GlobalPatchCrops
from ltzoo.data.cifar import img_num_per_cls
from ltzoo.data.loader import ArrayLoader, Batch
from ltzoo.methods import DSCLMethod, DSCLProbe, TrainSet, build_method
from ltzoo.methods import dscl as dscl_module
from ltzoo.methods.dscl import PROJECTION_HEAD, roi_features
from ltzoo.scheduler import build_scheduler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package, not installed

from training import checkpoint  # noqa: E402
from training.builders import param_groups  # noqa: E402
from training.config import load_config  # noqa: E402
from training.data import build_data  # noqa: E402

CONFIGS = ROOT / "training" / "configs"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
LABELS = np.array([0, 0, 1, 2, 0, 1, 0, 2])
TINY = {"queue_size": 16, "momentum": 0.99, "head_hidden": 32, "patch_size": 16, "global_scale": (0.2, 1.0),
        "blur": False}
IMAGENET_LT_TRAIN_IMAGES = 115_846  # docs/methods/dscl.md §2.6


def cifar_images(count: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def train_set(batch: int = 4, rank: int = 0, world: int = 1) -> TrainSet:
    return TrainSet(LABELS, batch, 0, MEAN, STD, images=cifar_images(len(LABELS)), rank=rank, world_size=world)


# --- ROIAlign teachers (§6.5) -------------------------------------------------------------------------------------


def column_index_map(size: int) -> torch.Tensor:
    return torch.arange(size, dtype=torch.float32).expand(1, 1, size, size).clone()


@pytest.mark.parametrize(("map_size", "view_size", "box"), [(7, 224, (32.0, 32.0, 96.0, 96.0)),
                                                           (8, 32, (4.0, 4.0, 12.0, 12.0))])
def test_roi_teacher_on_a_column_index_map_is_the_box_centre_column(map_size: int, view_size: int, box: tuple):
    boxes = torch.tensor([[box]])
    pooled = roi_features(column_index_map(map_size), boxes, map_size / view_size)
    assert pooled.shape == (1, 1, 1)
    assert pooled.item() == pytest.approx(2.0, abs=1e-6)  # aligned=True would give 1.5


def test_roi_teacher_on_a_constant_map_is_the_constant():
    feature_map = torch.full((2, 3, 8, 8), 0.75)
    boxes = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [3.0, 5.0, 20.0, 11.0]], [[7.0, 1.0, 9.0, 30.0], [1, 1, 2, 2]]])
    torch.testing.assert_close(roi_features(feature_map, boxes, 0.25), torch.full((2, 2, 3), 0.75))


def test_roi_teacher_pools_each_image_from_its_own_map():
    feature_map = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    boxes = torch.tensor([[[4.0, 4.0, 12.0, 12.0]], [[4.0, 4.0, 12.0, 12.0]]])
    assert roi_features(feature_map, boxes, 0.25).flatten().tolist() == [0.0, 1.0]


# --- crops (§6.6) -------------------------------------------------------------------------------------------------


def crops_of(images: torch.Tensor, **kwargs: Any):
    options = {"size": 32, "global_scale": (0.2, 1.0), "num_patches": 5, "patch_size": 16, "patch_scale": (0.05, 0.6)}
    options.update(kwargs)
    return GlobalPatchCrops(**options)(images, torch.Generator().manual_seed(0))


def uint8_batch(count: int = 8) -> torch.Tensor:
    return torch.from_numpy(cifar_images(count)).permute(0, 3, 1, 2).contiguous()


def test_crops_give_two_global_views_and_l_patches_with_boxes():
    crops = crops_of(uint8_batch())
    assert crops.g1.shape == crops.g2.shape == (8, 3, 32, 32)
    assert crops.patches.shape == (8, 5, 3, 16, 16) and crops.patches.dtype == torch.uint8
    assert crops.boxes.shape == (8, 5, 4)


def test_patch_boxes_lie_inside_the_global_view():
    boxes = crops_of(uint8_batch(64)).boxes
    assert (boxes >= 0).all() and (boxes <= 32).all()
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()


def test_each_patch_is_g1_cropped_at_its_box_and_resized():
    crops = crops_of(uint8_batch())
    for i in range(8):
        for j in range(5):
            x1, y1, x2, y2 = crops.boxes[i, j].long().tolist()
            expected = TF.resize(crops.g1[i, :, y1:y2, x1:x2], [16, 16], antialias=True)
            assert (expected.int() - crops.patches[i, j].int()).abs().max() <= 1


def test_boxes_refer_to_g1_after_its_flip():
    images = uint8_batch(16)
    crops = crops_of(images, global_scale=(1.0, 1.0), ratio=(1.0, 1.0))  # g1 = the image, flipped or not
    flipped = [bool(torch.equal(crops.g1[i], images[i].flip(-1))) for i in range(16)]
    assert any(flipped) and not all(flipped)
    for i in (flipped.index(True), flipped.index(False)):
        x1, y1, x2, y2 = crops.boxes[i, 0].long().tolist()
        expected = TF.resize(crops.g1[i, :, y1:y2, x1:x2], [16, 16], antialias=True)
        assert (expected.int() - crops.patches[i, 0].int()).abs().max() <= 1


def test_cifar_transform_gives_the_dscl_item():
    method = build_method("dscl", [5, 3, 2], 2, **TINY)
    query, key, patches, boxes = method.cifar_transform(MEAN, STD)(uint8_batch(4), torch.Generator().manual_seed(0))
    assert query.shape == key.shape == (4, 3, 32, 32) and query.dtype == torch.float32
    assert patches.shape == (4, 5, 3, 16, 16) and patches.dtype == torch.float32
    assert boxes.shape == (4, 5, 4)


def test_image_transform_gives_the_dscl_item_for_one_pil_image():
    method = build_method("dscl", [5, 3, 2], 2, **TINY)
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (40, 50, 3), dtype=np.uint8))
    query, key, patches, boxes = method.image_transform(MEAN, STD, size=32)(image)
    assert query.shape == key.shape == (3, 32, 32)
    assert patches.shape == (5, 3, 16, 16) and boxes.shape == (5, 4)


# --- stage 1 ------------------------------------------------------------------------------------------------------


def stage1(**options: Any) -> tuple[DSCLMethod, torch.nn.Module]:
    """A prepared DSCL method and its ResNet-32 (3 classes), as train.py builds them."""
    method = build_method("dscl", [5, 3, 2], 2, **{**TINY, **options})
    model = ltzoo.create_model("resnet32_dscl_cifar10_lt", num_classes=3, zero_init_last=True)
    model.train_heads.update(ltzoo.models.build_train_heads(method.heads_spec(model.head_hidden_size)))
    model = model.to(memory_format=torch.channels_last)
    method.bind_data(train_set())
    method.prepare_model(model)
    return method, model


def dscl_batch(method: DSCLMethod, seed: int = 0) -> Batch:
    views = method.cifar_transform(MEAN, STD)(uint8_batch(4), torch.Generator().manual_seed(seed))
    return Batch(views, torch.as_tensor(LABELS[:4]), torch.arange(4))


@pytest.mark.parametrize("key_bn", ["split", "plain"])
def test_one_full_step_without_a_process_group(key_bn: str):
    method, model = stage1(key_bn=key_bn)
    loss, logs = method.training_step(model, dscl_batch(method), 0)
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"loss", "dscl", "pbsd"}
    assert model.conv1.weight.grad.abs().sum() > 0
    assert model.train_heads[PROJECTION_HEAD].net[0].weight.grad.abs().sum() > 0
    assert model.fc.weight.grad is None  # stage 1 never trains the classifier


def test_key_encoder_is_outside_the_model_and_the_optimizer():
    method, model = stage1()
    optimizer = torch.optim.SGD(param_groups(model, 1.0), lr=0.1)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    key_parameters = list(method.moco.parameters())
    assert key_parameters and not optimized & {id(p) for p in key_parameters}
    method.training_step(model, dscl_batch(method), 0)[0].backward()
    assert all(p.grad is None and not p.requires_grad for p in key_parameters)


def test_queue_size_not_divisible_by_the_global_batch_stops_at_bind_data():
    method = build_method("dscl", [5, 3, 2], 2, **{**TINY, "queue_size": 18})
    with pytest.raises(ValueError, match="not divisible by the global batch 8"):
        method.bind_data(train_set(batch=4, world=2))


class Recording:
    """Wraps a loss and keeps copies of the tensors of every call."""

    def __init__(self, loss: torch.nn.Module) -> None:
        self.loss, self.calls = loss, []

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls.append([a.detach().clone() for a in args])
        return self.loss(*args)


@pytest.fixture(scope="module")
def recorded_step() -> dict[str, Any]:
    """One step on a queue already holding 4 keys, with the losses' inputs recorded."""
    method, model = stage1()
    generator = torch.Generator().manual_seed(1)
    method.moco.queue.enqueue(F.normalize(torch.randn(4, 128, generator=generator), dim=1), torch.tensor([2, 1, 0, 2]))
    before = method.moco.queue.contents()
    method.dscl, method.pbsd = Recording(method.dscl), Recording(method.pbsd)
    batch = dscl_batch(method)
    method.training_step(model, batch, 0)
    return {"method": method, "before": before, "labels": batch.labels}


def test_pbsd_uses_the_queue_before_this_batch_is_enqueued(recorded_step: dict[str, Any]):
    _, _, _, memory = recorded_step["method"].pbsd.calls[0]
    torch.testing.assert_close(memory, recorded_step["before"][0])


def test_dscl_uses_the_queue_before_this_batch_with_its_labels(recorded_step: dict[str, Any]):
    _, _, _, memory, memory_labels = recorded_step["method"].dscl.calls[0]
    torch.testing.assert_close(memory, recorded_step["before"][0])
    assert torch.equal(memory_labels, recorded_step["before"][1])


def test_enqueued_labels_match_the_enqueued_keys(recorded_step: dict[str, Any]):
    method = recorded_step["method"]
    _, keys, labels, _, _ = method.dscl.calls[0]
    features, queue_labels = method.moco.queue.contents()
    torch.testing.assert_close(features[4:8], keys)
    assert torch.equal(queue_labels[4:8], labels) and torch.equal(labels, recorded_step["labels"])


def test_masked_queue_gives_the_first_step_no_memory():
    method, model = stage1(queue_init="masked")
    method.dscl = Recording(method.dscl)
    method.training_step(model, dscl_batch(method), 0)
    assert method.dscl.calls[0][3].shape == (0, 128)


def test_random_queue_gives_the_first_step_a_full_memory():
    method, model = stage1(queue_init="random")
    method.dscl = Recording(method.dscl)
    method.training_step(model, dscl_batch(method), 0)
    assert method.dscl.calls[0][3].shape == (16, 128)


def test_method_state_round_trips_into_a_fresh_method():
    method, model = stage1()
    method.training_step(model, dscl_batch(method), 0)
    fresh, _ = stage1()
    fresh.load_state_dict(method.state_dict())
    for key, value in method.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_a_single_view_batch_is_a_clear_error():
    method, model = stage1()
    with pytest.raises(TypeError, match="query, key, patches, boxes"):
        method.training_step(model, Batch(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long),
                                          torch.arange(4)), 0)


def test_imagenet_encoder_and_head_parameter_counts():
    method = build_method("dscl", [1] * 1000, 200)
    model = ltzoo.create_model("resnet50_dscl_imagenet_lt")
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("fc."))
    heads = ltzoo.models.build_train_heads(method.heads_spec(model.head_hidden_size))
    head = sum(p.numel() for p in heads.parameters())
    assert (backbone, head, backbone + head) == (23_508_032, 4_458_624, 27_966_656)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # the stage-2 inference model


# --- stage 2: the linear probe (§3, §6.11) --------------------------------------------------------------------------


@pytest.fixture
def stage1_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Stage 1's weights file (what the training side hands the probe for a checkpoint) and the state it holds."""
    method, model = stage1()
    method.training_step(model, dscl_batch(method), 0)  # BN statistics away from their initial values
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    return tmp_path / "model.safetensors", state


def probe(init_from: Path, probe_bn: str = "train") -> tuple[DSCLProbe, torch.nn.Module]:
    method = build_method("dscl_probe", [5, 3, 2], 2, init_from=str(init_from), probe_bn=probe_bn,
                          crop_scale=(0.2, 1.0), blur=False)
    model = ltzoo.create_model("resnet32_dscl_cifar10_lt", num_classes=3).to(memory_format=torch.channels_last)
    method.bind_data(train_set())
    method.prepare_model(model)
    return method, model


def test_probe_loads_the_encoder_with_its_bn_buffers_and_a_fresh_classifier(stage1_checkpoint):
    weights, state = stage1_checkpoint
    _, model = probe(weights)
    loaded = model.state_dict()
    assert not any(k.startswith("train_heads.") for k in loaded)
    for key, value in loaded.items():
        if not key.startswith("fc."):
            assert torch.equal(value, state[key]), key
    assert torch.equal(model.fc.bias, torch.zeros(3))
    assert 0.003 < model.fc.weight.std().item() < 0.02  # N(0, 0.01²)


def test_probe_trains_only_the_classifier(stage1_checkpoint):
    _, model = probe(stage1_checkpoint[0])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    optimized = {id(p) for group in param_groups(model, 1.0) for p in group["params"]}
    assert trainable == {"fc.weight", "fc.bias"}
    assert optimized == {id(model.fc.weight), id(model.fc.bias)}


def probe_step(method: DSCLProbe, model: torch.nn.Module) -> None:
    optimizer = torch.optim.SGD(param_groups(model, 1.0), lr=10.0, momentum=0.9)
    method.on_epoch_start(0)
    model.train()
    pacing = next(iter(ArrayLoader(cifar_images(8), LABELS, 4, method.cifar_transform(MEAN, STD))))
    loss, _ = method.training_step(model, pacing, 0)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_probe_bn_train_updates_running_statistics_and_nothing_else_in_the_backbone(stage1_checkpoint):
    method, model = probe(stage1_checkpoint[0], probe_bn="train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fc_before = model.fc.weight.detach().clone()
    probe_step(method, model)
    after = model.state_dict()
    for name, _ in model.named_parameters():
        if not name.startswith("fc."):
            assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])
    assert not torch.equal(model.fc.weight, fc_before)


def test_probe_bn_eval_leaves_every_backbone_tensor_unchanged(stage1_checkpoint):
    method, model = probe(stage1_checkpoint[0], probe_bn="eval")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe_step(method, model)
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, before[key]), key


def test_probe_loader_draws_as_many_images_per_epoch_as_the_training_set_on_every_rank():
    method = build_method("dscl_probe", [5, 3, 2], 2, init_from="unused")
    sampler = method.train_sampler(LABELS, seed=0)
    assert len(sampler) == len(LABELS)
    for rank in range(2):
        loader = ArrayLoader(cifar_images(8), LABELS, 3, method.cifar_transform(MEAN, STD), sampler=sampler, rank=rank,
                             world_size=2)
        assert len(loader) == 2  # ⌈10 draws / 2 ranks / batch 3⌉, like the plain loader


def test_probe_sampler_draws_classes_uniformly():
    labels = np.repeat([0, 1, 2], [200, 20, 2])
    method = build_method("dscl_probe", [200, 20, 2], 2, init_from="unused")
    drawn = torch.as_tensor(list(method.train_sampler(labels, seed=0)))
    frequencies = torch.bincount(torch.as_tensor(labels)[drawn], minlength=3).double() / len(drawn)
    torch.testing.assert_close(frequencies, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.1, rtol=0)


def test_probe_image_transform_gives_one_augmented_normalised_tensor_per_image():
    method = build_method("dscl_probe", [5, 3, 2], 2, init_from="unused")
    torch.manual_seed(0)  # a random crop of a dark corner can hold no value above the mean: fix the crop
    view = method.image_transform(MEAN, STD, 64)(Image.fromarray(cifar_images(1)[0]))
    assert view.shape == (3, 64, 64) and view.dtype == torch.float32
    assert view.min() < 0 < view.max()


def test_probe_without_stage1_weights_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="stage-1 weights"):
        probe(tmp_path / "missing")


def test_the_probe_knows_no_checkpoint_layout_of_the_training_side():
    """training/checkpoint.py resolves a run's checkpoint folder to its weights file; ltzoo never names its paths."""
    source = inspect.getsource(dscl_module)
    assert "checkpoints" not in source and "epoch_" not in source and "model.safetensors" not in source


# --- configs (§2.6, §3, §5, §6.13) --------------------------------------------------------------------------------

ENTRIES = registry.list_models("*dscl*", include_tags=True)


@pytest.mark.parametrize("full_name", ENTRIES)
def test_every_dscl_entry_has_a_stage1_and_a_probe_config(full_name: str):
    stage1_cfg, probe_cfg = load_config(CONFIGS / f"{full_name}.yaml"), load_config(CONFIGS / f"{full_name}.probe.yaml")
    assert stage1_cfg.full_name == probe_cfg.full_name == full_name
    assert (stage1_cfg.method["name"], probe_cfg.method["name"]) == ("dscl", "dscl_probe")
    assert probe_cfg.resolved_run_dir() != stage1_cfg.resolved_run_dir()


@pytest.mark.parametrize("full_name", ENTRIES)
def test_probe_starts_from_stage1s_last_checkpoint(full_name: str):
    stage1_cfg, probe_cfg = load_config(CONFIGS / f"{full_name}.yaml"), load_config(CONFIGS / f"{full_name}.probe.yaml")
    last = stage1_cfg.resolved_run_dir() / "checkpoints" / f"epoch_{stage1_cfg.epochs - 1:04d}"
    assert Path(probe_cfg.method["init_from"]).expanduser() == last


@pytest.mark.parametrize("full_name", [n for n in ENTRIES if "cifar" in n])
def test_cifar_queue_is_at_most_the_imagenet_lt_share_of_the_training_set(full_name: str):
    cfg = load_config(CONFIGS / f"{full_name}.yaml")
    train_images = sum(img_num_per_cls(5000 if "cifar10_" in full_name else 500,
                                       10 if "cifar10_" in full_name else 100, cfg.data.imb_factor))
    assert cfg.method["queue_size"] % cfg.data.batch_size == 0
    imagenet_share = round(65_536 / IMAGENET_LT_TRAIN_IMAGES, 3)
    assert imagenet_share == 0.566
    assert round(cfg.method["queue_size"] / train_images, 3) <= imagenet_share  # = on CIFAR-100-LT IF 100


def test_imagenet_lt_iterations_per_epoch():
    stage1_cfg = load_config(CONFIGS / "resnet50_dscl_imagenet_lt.e200.yaml")
    probe_cfg = load_config(CONFIGS / "resnet50_dscl_imagenet_lt.e200.probe.yaml")
    assert IMAGENET_LT_TRAIN_IMAGES // stage1_cfg.data.batch_size == 452  # drop_last
    assert math.ceil(IMAGENET_LT_TRAIN_IMAGES / probe_cfg.data.batch_size) == 57
    assert stage1_cfg.method["queue_size"] % stage1_cfg.data.batch_size == 0


def test_imagenet_lt_schedules_of_the_configs():
    stage1_cfg = load_config(CONFIGS / "resnet50_dscl_imagenet_lt.e200.yaml")
    probe_cfg = load_config(CONFIGS / "resnet50_dscl_imagenet_lt.e200.probe.yaml")
    stage1_lr = build_scheduler(stage1_cfg.schedule, stage1_cfg.optim.lr, stage1_cfg.epochs)
    values = [stage1_lr.lr_at(epoch, i, 452) for epoch, i in ((0, 0), (5, 0), (10, 0), (105, 0), (199, 451))]
    assert values[:4] == pytest.approx([0.0, 0.05, 0.1, 0.05], abs=1e-12)
    assert values[4] == pytest.approx(3.3455e-11, rel=1e-4)
    probe_lr = build_scheduler(probe_cfg.schedule, probe_cfg.optim.lr, probe_cfg.epochs)
    assert [probe_lr.lr_at(e, 0, 57) for e in (0, 19, 20, 29, 30, 39)] == pytest.approx([10, 10, 1, 1, 0.1, 0.1])


# --- through training/train.py (slow) -------------------------------------------------------------------------------

DIGEST = re.compile(r"\[rank (\d)/2\] (final weights|method state) sha256 ([0-9a-f]{64})")
CIFAR10_STAGE1 = CONFIGS / "resnet32_dscl_cifar10_lt.if100.yaml"
CIFAR10_PROBE = CONFIGS / "resnet32_dscl_cifar10_lt.if100.probe.yaml"


@pytest.fixture(scope="module")
def tiny_cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CIFAR-10 training archive (symlinked) and a 100-image test archive, so evaluation stays cheap."""
    train_archive, test_archive = shared_file("cifar10_train_jpeg.npz"), shared_file("cifar10_test_jpeg.npz")
    root = tmp_path_factory.mktemp("cifar10")
    (root / train_archive.name).symlink_to(train_archive)
    with np.load(test_archive) as z:
        keep = np.concatenate([np.flatnonzero(z["y"] == c)[:10] for c in range(10)])
        jpeg, offsets = z["jpeg"], z["offsets"]
        jpegs = [jpeg[offsets[i]:offsets[i + 1]] for i in keep]
        np.savez(root / test_archive.name, jpeg=np.concatenate(jpegs),
                 offsets=np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]), y=z["y"][keep],
                 class_names=z["class_names"])
    return root


def run(command: list[str], **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **env_vars}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_stage1_drops_the_last_smaller_batch_and_the_probe_keeps_it(tiny_cifar_root: Path):
    stage1, probe = (load_config(c, [f"data.root={tiny_cifar_root}", "data.subset=300", "data.batch_size=64"])
                     for c in (CIFAR10_STAGE1, CIFAR10_PROBE))
    data = build_data(stage1, registry.get_pretrained_cfg(stage1.full_name))
    counts = data.class_counts
    stage1_loader = data.make_train(build_method("dscl", counts, 1, **{**TINY, "queue_size": 128}))
    probe_loader = data.make_train(DSCLProbe(counts, 1, init_from="unused"))
    assert [len(b.labels) for b in stage1_loader] == [64] * 4  # docs/methods/dscl.md §5: drop_last
    assert [len(b.labels) for b in probe_loader] == [64] * 4 + [44]  # docs/methods/dscl.md §3.2: every draw


@pytest.mark.slow
def test_two_processes_hold_the_same_queue_and_weights(tmp_path: Path, tiny_cifar_root: Path):
    # `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate 1.15 sends --cpu to its single-process
    # launcher); two gloo processes need the torchrun launcher (--multi_gpu) with ACCELERATE_USE_CPU.
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    result = run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "training" / "train.py"),
                  "--config", str(CIFAR10_STAGE1), "epochs=1", "data.subset=256", "data.batch_size=32",
                  "method.queue_size=128", f"data.root={tiny_cifar_root}", "--no-export",
                  f"run_dir={tmp_path / 'run'}"], ACCELERATE_USE_CPU="true")
    digests = {(int(rank), kind): digest for rank, kind, digest in DIGEST.findall(result.stdout + result.stderr)}
    assert set(digests) == {(r, k) for r in (0, 1) for k in ("final weights", "method state")}
    assert digests[0, "method state"] == digests[1, "method state"]  # queue, labels, pointer, key encoder
    assert digests[0, "final weights"] == digests[1, "final weights"]
    state = checkpoint.load_state(tmp_path / "run" / "checkpoints" / "epoch_0000" / checkpoint.METHOD)
    assert int(state["queue.filled"]) == 128 and int(state["queue.pointer"]) == 256 % 128  # 256 keys of both ranks


@pytest.mark.slow
def test_stage1_then_probe_through_train_py(tmp_path: Path, tiny_cifar_root: Path):
    train = str(ROOT / "training" / "train.py")
    common = [f"data.root={tiny_cifar_root}", "data.subset=512", "--no-export"]
    run([sys.executable, train, "--config", str(CIFAR10_STAGE1), "epochs=2", *common, f"run_dir={tmp_path / 's1'}"])
    stage1_last = tmp_path / "s1" / "checkpoints" / "epoch_0001"
    result = run([sys.executable, train, "--config", str(CIFAR10_PROBE), "epochs=1", f"method.init_from={stage1_last}",
                  *common, f"run_dir={tmp_path / 's2'}"])
    assert "epoch 1: test top-1" in result.stdout
