"""A training step never reads a value back from the training device (no hidden host syncs).

On a GPU every device-to-host read (`.item()`, `float(t)`, `if t:`, `.tolist()`, `.cpu()`, `nonzero()`, boolean-mask
indexing, `bincount`, a shape that depends on values) stalls the host until the GPU has drained its queue. Here the
whole step (the loader's batch, the method's second stream and mixing, forward, loss, backward, SGD) runs on
PyTorch's `meta` device, whose tensors have shapes but no values: any such read raises. Only the random parameters
drawn on the host (numbers per image, per batch) are real; their copies to the device must not wait
(`non_blocking=True`: a blocking host-to-device copy waits for the device's queue to drain), which a dispatch mode
watches. Meta kernels run in Python
(seconds per ResNet-32 step), so the default suite checks the CE and ConCutMix steps and `-m slow` every method.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.loader import ArrayLoader
from ltzoo.methods import TrainSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.builders import build_config_method, build_training_model, train_step  # noqa: E402
from training.config import load_config  # noqa: E402

META = torch.device("meta")
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
LR = 0.1
# options that put each method's every branch (mixing, rectified labels, DRW, queue reads) in the first steps
BRANCHES = {
    "ce": [], "ce_drw": ["method.drw_start=0"], "ldam_drw": ["method.drw_start=0"], "bsce": [], "bcl": [],
    "concutmix": ["method.cutmix_prob=1.0", "method.warm_epoch=0"],
    "la": [], "ce_lsm": ["method.mix_start=-1", "method.p_mix=1.0"],
    "ce_drw_lsm": ["method.mix_start=-1", "method.p_mix=1.0", "method.drw_start=0"],
    "ldam_drw_lsm": ["method.mix_start=-1", "method.p_mix=1.0", "method.drw_start=0"],
    "cmo": ["method.aug_start=-1", "method.aug_end=0", "method.p_aug=1.0", "method.drw_start=0"],
    "smcl": ["method.aug_start=-1", "method.p_aug=1.0", "method.drw_start=0"],
    "dscl": ["method.queue_size=32", "data.batch_size=16"],  # the queue holds whole global batches
}


@pytest.fixture(autouse=True)
def meta_autocast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`torch.autocast("meta", enabled=False)` (the losses' fp32 islands) as the CPU's: autocast knows no meta."""
    original = torch.autocast

    class Autocast(original):
        def __init__(self, device_type: str, *args, **kwargs) -> None:
            super().__init__("cpu" if device_type == "meta" else device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", Autocast)
    yield


class BlockingCopies(TorchDispatchMode):
    """Records every copy from the host to the meta device that waits for the copy to finish."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's protocol)
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default:
            source, target = args[0], kwargs.get("device")
            waits = not kwargs.get("non_blocking", False)
            if waits and source.device.type == "cpu" and target is not None and torch.device(target) == META:
                self.seen.append(f"to({tuple(source.shape)})")
        elif func is torch.ops.aten.copy_.default:
            target, source = args[0], args[1]
            waits = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
            if waits and source.device.type == "cpu" and source.dim() > 0 and target.device == META:
                self.seen.append(f"copy_({tuple(source.shape)})")
        return func(*args, **kwargs)


def run_steps(recipe: str, *overrides: str, steps: int = 1, read_loss: bool = False) -> torch.Tensor:
    """`steps` training steps of a CIFAR-10-LT recipe in epoch 1, everything on the meta device; the last loss."""
    cfg = load_config(CONFIGS / f"resnet32_{recipe}_cifar10_lt.if100.yaml", ["epochs=4", *BRANCHES[recipe],
                                                                            *overrides])
    labels = np.repeat(np.arange(10), 4)
    images = np.random.RandomState(0).randint(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    method = build_config_method(cfg, np.bincount(labels))
    method.bind_data(TrainSet(labels, 16, cfg.seed, CIFAR_MEAN, CIFAR_STD, images=images, device=META))
    model = build_training_model(cfg, method).to(META)
    loader = ArrayLoader(images, labels, 16, method.cifar_transform(CIFAR_MEAN, CIFAR_STD), seed=cfg.seed,
                         drop_last=method.drop_last, device=META)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    loader.set_epoch(1)
    method.on_epoch_start(1)
    with BlockingCopies() as copies:
        for _, batch in zip(range(steps), loader):
            loss, logs = train_step(method, model, optimizer, batch, 1, LR)
            if read_loss:
                loss.item()
    assert copies.seen == [], f"host-to-device copies that wait: {copies.seen}"
    return loss


def test_every_cifar10_lt_recipe_has_its_step_checked():
    recipes = {p.name.removeprefix("resnet32_").removesuffix("_cifar10_lt.if100.yaml")
               for p in CONFIGS.glob("resnet32_*_cifar10_lt.if100.yaml")}
    assert set(BRANCHES) == recipes


def test_the_loader_delivers_batches_on_its_device():
    loader = ArrayLoader(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8), 4, lambda x, g: x, device=META)
    batch = next(iter(loader))
    assert (batch.images.device, batch.labels.device, batch.indices.device) == (META, META, META)


def test_a_step_that_reads_its_loss_back_is_caught():
    with pytest.raises(RuntimeError, match="meta"):
        run_steps("ce", read_loss=True)


def test_a_ce_step_reads_nothing_back_from_the_device():
    assert run_steps("ce", steps=2).device == META


def test_a_concutmix_step_with_cutmix_and_rectified_labels_reads_nothing_back_from_the_device():
    assert run_steps("concutmix").device == META


def test_a_concutmix_step_without_cutmix_reads_nothing_back_from_the_device():
    assert run_steps("concutmix", "method.cutmix_prob=0.0").device == META


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(set(BRANCHES) - {"ce", "concutmix"}))
def test_every_cifar_methods_step_reads_nothing_back_from_the_device(recipe: str):
    assert run_steps(recipe).device == META
