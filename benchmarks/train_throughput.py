"""Images/s of one ResNet-32 CE training step (batch 128) on CIFAR-10-LT IF 100: ltzoo's loop against the reference.

(a) ltzoo: ArrayLoader + batched `cifar_train_transform` in the main process, channels_last, bf16 autocast where the
    CPU has native bf16 (`ltzoo.precision.default_amp()`), else fp32, `build_method("ce").training_step`, SGD.
(b) reference, written as kaidic/LDAM-DRW's cifar_train.py does it: fp32, NCHW, per-image PIL RandomCrop(32, 4) +
    flip + ToTensor + Normalize in a `DataLoader(num_workers=2)`, `nn.CrossEntropyLoss`, SGD.

Both train the same ResNet-32 (option-A) from the same initial weights with the same SGD settings, on the CPU, for the
same number of timed steps after the same number of warm-up steps. By default 3 rounds of 20 timed steps alternate (a)
and (b) (60 timed steps each), so load from other processes on the machine falls on both alike; each round starts
from fresh copies of the model and loader, after its own warm-up.
Usage: python benchmarks/train_throughput.py [--steps 20] [--rounds 3] [--warmup 10] [--precision auto]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

import ltzoo
from ltzoo.augment.views import cifar_train_transform
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.cifar import CifarDataset, LongTailedCifar, cifar_lt
from ltzoo.data.loader import ArrayLoader
from ltzoo.methods import build_method
from ltzoo.precision import default_amp

BATCH_SIZE = 128
MODEL = "resnet32_ce_cifar10_lt.if100"



def sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)


def endless(make_epoch: Callable[[int], Iterator]) -> Iterator:
    """Batches across epoch boundaries: `make_epoch(epoch)` gives one epoch's iterator."""
    epoch = 0
    while True:
        yield from make_epoch(epoch)
        epoch += 1


def timed(step: Callable[[], int], warmup: int, steps: int) -> tuple[int, float]:
    """Run `warmup` untimed steps, then `steps` timed ones; return (images, seconds) of the timed part."""
    for _ in range(warmup):
        step()
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        images += step()
    return images, time.perf_counter() - start


def ltzoo_loop(model: nn.Module, images: np.ndarray, labels: np.ndarray, amp: str | None) -> Callable[[], int]:
    """One training step of ltzoo's loop per call."""
    model = model.to(memory_format=torch.channels_last).train()
    method = build_method("ce", np.bincount(labels, minlength=10), epochs=200)
    loader = ArrayLoader(images, labels, BATCH_SIZE, cifar_train_transform(CIFAR_MEAN, CIFAR_STD), seed=0,
                         channels_last=True)

    def epoch_batches(epoch: int) -> Iterator:
        loader.set_epoch(epoch)
        method.on_epoch_start(epoch)
        return iter(loader)

    batches, optimizer = endless(epoch_batches), sgd(model)

    def step() -> int:
        batch = next(batches)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
        with autocast:
            loss, _ = method.training_step(model, batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return batch.labels.shape[0]

    return step


def reference_loop(model: nn.Module, data: LongTailedCifar) -> Callable[[], int]:
    """One training step of the LDAM-DRW reference loop per call (fp32, NCHW, PIL transforms in 2 workers)."""
    model = model.train()
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
    ])
    loader = DataLoader(CifarDataset(data, transform), batch_size=BATCH_SIZE, shuffle=True, num_workers=2)
    batches, optimizer, criterion = endless(lambda epoch: iter(loader)), sgd(model), nn.CrossEntropyLoss()

    def step() -> int:
        inputs, targets = next(batches)
        loss = criterion(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return targets.shape[0]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per pipeline and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before each timed part")
    parser.add_argument("--rounds", type=int, default=3, help="alternate (a) and (b) this many times")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="ltzoo's precision: auto = bf16 where native (default_amp), else fp32")
    args = parser.parse_args()

    train = cifar_lt("cifar10", "train", 100)
    amp = default_amp() if args.precision == "auto" else (None if args.precision == "fp32" else "bf16")
    print(f"CIFAR-10-LT IF 100: {len(train.labels)} images ({train.source})")
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; batch {BATCH_SIZE}, {args.warmup} warm-up + {args.steps} timed steps, "
          f"{args.rounds} round(s)")

    torch.manual_seed(0)
    initial = ltzoo.create_model(MODEL)
    totals = {"a": [0, 0.0], "b": [0, 0.0]}
    for round_ in range(args.rounds):
        for key, make in (("a", lambda m: ltzoo_loop(m, train.images, train.labels, amp)),
                          ("b", lambda m: reference_loop(m, train))):
            images, seconds = timed(make(copy.deepcopy(initial)), args.warmup, args.steps)
            totals[key][0] += images
            totals[key][1] += seconds
            print(f"  round {round_ + 1} ({key}): {images / seconds:8.1f} images/s")

    rate_a, rate_b = (totals[k][0] / totals[k][1] for k in ("a", "b"))
    print(f"(a) ltzoo loop      (ArrayLoader, channels_last, {amp or 'fp32'}): {rate_a:8.1f} images/s")
    print(f"(b) reference loop  (PIL DataLoader x2 workers, NCHW, fp32):  {rate_b:8.1f} images/s")
    print(f"ratio (a)/(b): {rate_a / rate_b:.2f}x")


if __name__ == "__main__":
    main()
