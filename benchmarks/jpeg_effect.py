"""What JPEG quality 75 costs: the same small CIFAR-10 training run on the lossless originals and on their q75 copies.

The shared CIFAR-10 is a JPEG (q75) re-encoding; 4,000 training images (canonical indices 0–3999) also exist
bit-exact. Both versions of the same images are split alike: the first `--train` for training, the rest held out
(≈ balanced over the 10 classes). A ResNet-32 is trained with CE from the same initial weights, seed and schedule
on each version (ltzoo's batched crop + flip, SGD 0.1 momentum 0.9 wd 2e-4, ×0.1 at 2/3 and 5/6 of the epochs) and
evaluated on the held-out images of its own version and of the other. The data-starved regime stands in for the
tail classes of a long-tailed run, where a zoo model's gap to a paper's number shows first.
Usage: python benchmarks/jpeg_effect.py [--epochs 30] [--seeds 0 1] [--precision auto] [--threads 1]
       [--versions lossless jpeg_q75] [--json results/jpeg_effect.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import ltzoo
from ltzoo.augment.views import cifar_train_transform
from ltzoo.data import ArrayLoader, load_cifar
from ltzoo.data.batch_transforms import cifar_eval_transform
from ltzoo.data.sources import shared_data_dir
from ltzoo.evaluate import evaluate
from ltzoo.precision import default_amp

MODEL = "resnet32_ce_cifar10_lt"
LOSSLESS = 4000


def versions() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"lossless": (images, labels), "jpeg_q75": (images, labels)} for canonical training indices 0–3999."""
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("needs the shared data folder (cifar_lossless_refs.npz and cifar10_train_jpeg.npz)")
    with np.load(shared / "cifar_lossless_refs.npz") as refs:
        lossless = refs["cifar10_train_first4000_x"], refs["cifar10_train_first4000_y"].astype(np.int64)
    jpeg = load_cifar("cifar10", train=True, root=shared)
    if not np.array_equal(jpeg.labels[:LOSSLESS], lossless[1]):
        raise SystemExit("the JPEG archive's first 4,000 labels differ from the lossless references")
    return {"lossless": lossless, "jpeg_q75": (jpeg.images[:LOSSLESS], jpeg.labels[:LOSSLESS])}


def train_one(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int, amp: torch.dtype | None,
              batch_size: int = 128) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = ltzoo.create_model(MODEL).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    milestones = (round(epochs * 2 / 3), round(epochs * 5 / 6))
    loader = ArrayLoader(images, labels, batch_size, cifar_train_transform(), seed=seed)
    model.train()
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * 0.1 ** sum(epoch >= m for m in milestones)
        loader.set_epoch(epoch)
        for batch in loader:
            with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
                loss = F.cross_entropy(model(batch.images), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--train", type=int, default=3000, help="images 0..N-1 train, N..3999 are held out")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--versions", nargs="+", choices=("lossless", "jpeg_q75"), default=["lossless", "jpeg_q75"],
                   help="which versions to train on (both are always evaluated)")
    p.add_argument("--json", type=Path, help="write the runs and the mean gap here (the CIFAR-10 model cards quote it)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = default_amp() if args.precision == "auto" else args.precision
    amp = torch.bfloat16 if precision == "bf16" else None
    data = versions()
    held_out = {name: ArrayLoader(x[args.train:], y[args.train:], 256, cifar_eval_transform())
                for name, (x, y) in data.items()}
    counts = np.bincount(data["lossless"][1][: args.train], minlength=10)
    print(f"{args.train} training / {LOSSLESS - args.train} held-out images, {args.epochs} epochs, {precision}, "
          f"{torch.get_num_threads()} thread(s)")
    print("| trained on | seed | top-1 on lossless held-out | top-1 on JPEG held-out | minutes |")
    print("|---|---|---|---|---|")
    results: dict[str, list[float]] = {name: [] for name in args.versions}
    for seed in args.seeds:
        for name in args.versions:
            x, y = data[name]
            start = time.perf_counter()
            model = train_one(x[: args.train], y[: args.train], args.epochs, seed, amp)
            top1 = {test: evaluate(model, loader, counts, amp_dtype=amp, progress=False).top1
                    for test, loader in held_out.items()}
            results[name].append(top1[name])
            print(f"| {name} | {seed} | {top1['lossless']:.2f} | {top1['jpeg_q75']:.2f} | "
                  f"{(time.perf_counter() - start) / 60:.1f} |", flush=True)
    means = {name: float(np.mean(top1)) for name, top1 in results.items()}
    print("mean own-domain top-1: " + ", ".join(f"{name} {mean:.2f}" for name, mean in means.items()))
    gap = means["lossless"] - means["jpeg_q75"] if len(means) == 2 else None
    if gap is not None:
        print(f"JPEG q75 costs {gap:.2f} points")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python benchmarks/jpeg_effect.py " + " ".join(sys.argv[1:]), "precision": precision,
            "train_images": args.train, "epochs": args.epochs, "seeds": args.seeds, "top1": results,
            "mean_top1": means, "jpeg_cost_points": gap}, indent=2) + "\n")


if __name__ == "__main__":
    main()
