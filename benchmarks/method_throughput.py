"""Images/s of one training step per method: ResNet-32, batch 128, CIFAR-10-LT IF 100 class counts.

Each method is a named entry of `BENCHES`: a factory that builds the method with `build_method`, the model of its
CIFAR-10-LT zoo entry (its classifier, with the method's training-only heads), SGD, the main `ArrayLoader` and the
method's second stream over the same synthetic uint8 images (on the training device, where they are augmented),
and returns a `MethodBench` whose `step()` runs one
full step (the method's `training_step` under bf16 autocast where `ltzoo.precision.default_amp()` says the
hardware has it, backward, SGD) and whose `parts` accumulate the seconds of named sub-steps (e.g. SMCL's saliency
pass; every method's `main batch`: the main loader's batch and its augmentation, the data pipeline's share).
Throughput counts the background batch (128 images per step) for every method. Entries alternate over
--rounds so background load hits all alike.
Usage: python benchmarks/method_throughput.py [--steps 20] [--warmup 3] [--rounds 2] [--methods ce smcl ...]
Add a method: one line in BENCHES (and, for a part worth timing, a wrapper like `timed_part`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import ltzoo
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.cifar import img_num_per_cls
from ltzoo.data.loader import ArrayLoader
from ltzoo.methods import TrainingMethod, TrainSet, build_method
from ltzoo.models import build_train_heads
from ltzoo.precision import default_amp

BATCH_SIZE = 128
EPOCHS = 200
EPOCH = 100  # inside every method's augmentation window (3 < e < E − 3) and before DRW


@dataclass
class MethodBench:
    """One method's step, ready to call; `parts` maps a sub-step's name to its accumulated seconds."""

    step: Callable[[], int]
    parts: dict[str, float] = field(default_factory=dict)


def synthetic_cifar10_lt(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 32, 32, 3) noise images with CIFAR-10-LT IF 100 class counts (12,406 images)."""
    counts = img_num_per_cls(5000, 10, 100)
    labels = np.repeat(np.arange(10), counts)
    images = np.random.RandomState(seed).randint(0, 256, (len(labels), 32, 32, 3)).astype(np.uint8)
    return images, labels


def timed_part(parts: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its wall time (CUDA-synchronised) to `parts[name]` on every call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        synchronize()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        synchronize()
        parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
        return out

    return wrapper


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def method_bench(name: str, instrument: Callable[[TrainingMethod, dict[str, float]], None] | None = None,
                 **options: Any) -> Callable[[np.ndarray, np.ndarray, torch.device, str | None], MethodBench]:
    """A factory for the step of method `name` built with `options`; `instrument` may wrap parts to time."""

    def build(images: np.ndarray, labels: np.ndarray, device: torch.device, amp: str | None) -> MethodBench:
        method = build_method(name, np.bincount(labels), EPOCHS, **options)
        torch.manual_seed(0)
        model = ltzoo.create_model(f"resnet32_{name}_cifar10_lt")  # the method's zoo entry: its classifier
        spec = method.heads_spec(model.head_hidden_size)
        if spec:
            model.train_heads.update(build_train_heads(spec))
        model = model.to(device, memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
        train_set = TrainSet(labels, BATCH_SIZE, 0, CIFAR_MEAN, CIFAR_STD, images=images, device=device)
        method.bind_data(train_set)
        method.prepare_model(model)  # as train.py: after bind_data; builds e.g. DSCL's key encoder and queue
        loader = ArrayLoader(images, labels, BATCH_SIZE, method.cifar_transform(CIFAR_MEAN, CIFAR_STD), seed=0,
                             drop_last=True, device=device)
        bench = MethodBench(step=lambda: 0)
        if instrument is not None:
            instrument(method, bench.parts)
        batches = endless(loader, method)
        next_batch = timed_part(bench.parts, "main batch", lambda: next(batches))
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16"
                    else contextlib.nullcontext())

        def step() -> int:
            batch = next_batch()
            with autocast:
                loss, _ = method.training_step(model, batch, EPOCH)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return batch.labels.shape[0]

        bench.step = step
        return bench

    return build


def endless(loader: ArrayLoader, method: TrainingMethod) -> Iterator[Any]:
    """Main-loader batches of epoch `EPOCH`, restarting the epoch (and the method's streams) when used up."""
    while True:
        loader.set_epoch(EPOCH)
        method.on_epoch_start(EPOCH)
        yield from loader


def time_saliency_pass(method: TrainingMethod, parts: dict[str, float]) -> None:
    """Time the paired engine's saliency maps (the no-grad saliency forward and CAM, or OpenCV)."""
    engine = method.engine
    engine.saliency_maps = timed_part(parts, "saliency pass", engine.saliency_maps)


def time_patch_region(method: TrainingMethod, parts: dict[str, float]) -> None:
    """Time LSM's region: the Grad-CAM saliency pass over [x_t; x_h], unit scores, mask and label weights."""
    engine = method.engine
    engine.patch_region = timed_part(parts, "saliency pass + mask", engine.patch_region)


def time_dscl_passes(method: TrainingMethod, parts: dict[str, float]) -> None:
    """Time DSCL's five patch-student passes and its key side (EMA update + no-grad key pass with split BN)."""
    method.patch_students = timed_part(parts, "patch students", method.patch_students)
    method.moco.keys = timed_part(parts, "EMA + keys", method.moco.keys)


DSCL_CIFAR = {"queue_size": 6144, "momentum": 0.99, "head_hidden": 512, "patch_size": 16, "global_scale": (0.2, 1.0),
              "blur": False}  # docs/methods/dscl.md §5

BENCHES: dict[str, Callable[[np.ndarray, np.ndarray, torch.device, str | None], MethodBench]] = {
    "ce": method_bench("ce"),
    "smcl (augmented step)": method_bench("smcl", time_saliency_pass, p_aug=1.0),
    "smcl (gate p=0.5)": method_bench("smcl", time_saliency_pass),
    "smcl opencv (augmented step)": method_bench("smcl", time_saliency_pass, p_aug=1.0, saliency="opencv_finegrained"),
    "ce_drw": method_bench("ce_drw"),
    "ce_drw_lsm (mixed step)": method_bench("ce_drw_lsm", time_patch_region, p_mix=1.0),
    "ce_drw_lsm (gate p=0.5)": method_bench("ce_drw_lsm", time_patch_region),
    "bcl": method_bench("bcl"),
    "concutmix": method_bench("concutmix"),
    "dscl stage 1 (full queue)": method_bench("dscl", time_dscl_passes, queue_init="random", **DSCL_CIFAR),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(BENCHES), choices=list(BENCHES))
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = default_amp()
    images, labels = synthetic_cifar10_lt()
    benches = {name: BENCHES[name](images, labels, device, amp) for name in args.methods}
    images_done = dict.fromkeys(benches, 0)
    seconds = dict.fromkeys(benches, 0.0)
    part_seconds: dict[str, dict[str, float]] = {name: {} for name in benches}
    for _ in range(args.rounds):
        for name, bench in benches.items():
            for _ in range(args.warmup):
                bench.step()
            bench.parts.clear()
            synchronize()
            start = time.perf_counter()
            images_done[name] += sum(bench.step() for _ in range(args.steps))
            synchronize()
            seconds[name] += time.perf_counter() - start
            for part, t in bench.parts.items():
                part_seconds[name][part] = part_seconds[name].get(part, 0.0) + t

    hardware = torch.cuda.get_device_name() if device.type == "cuda" else (
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    print(f"{hardware}; autocast {amp or 'off (fp32)'}; batch {BATCH_SIZE}; {args.rounds} × {args.steps} timed steps")
    print(f"{'method':30s} {'images/s':>9s} {'vs ce':>6s}  share of the step")
    for name in benches:
        rate = images_done[name] / seconds[name]
        relative = f"{rate / (images_done['ce'] / seconds['ce']):.2f}x" if "ce" in benches else "-"
        parts = ", ".join(f"{part} {t / seconds[name]:.0%}" for part, t in part_seconds[name].items())
        print(f"{name:30s} {rate:9.1f} {relative:>6s}  {parts}")


if __name__ == "__main__":
    main()
