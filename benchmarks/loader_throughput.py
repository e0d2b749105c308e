"""Images/s of the ImageNet-LT training loader (split-file dataset, per-image decode + augmentation in workers).

The fixture is a tiny split-file root built from real images: the first `--images` real CIFAR-10 training images
(shared JPEG archive), upscaled to `--size` px and saved as quality-90 JPEGs, listed in an `ImageNet_LT_train.txt`.
Measured: the loader training uses (`ltzoo.data.loader.image_loader`: workers, persistent across epochs, pinned
memory where CUDA is there) over `SplitFileDataset` with ImageNet-LT's training transform (RandomResizedCrop 224,
flip, ColorJitter, normalize), decoding with torchvision (`decode_rgb`) against PIL's open + convert, for each worker
count. The first epoch (worker start-up) is left out; the rate is over the next `--epochs` epochs.
Usage: python benchmarks/loader_throughput.py [--images 256] [--size 320] [--workers 0 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import RandomSampler

from ltzoo.benchmarks import BENCHMARKS
from ltzoo.data import splits
from ltzoo.data.loader import image_loader
from ltzoo.data.sources import load_cifar, shared_data_dir
from ltzoo.data.splits import SplitFileDataset
from ltzoo.data.transforms import benchmark_train_transform

BATCH_SIZE = 64


def write_root(folder: Path, count: int, size: int) -> Path:
    """A split-file root of `count` real CIFAR-10 images as `size`-px JPEGs; returns its train list."""
    arrays = load_cifar("cifar10", train=True, root=os.environ.get("LTZOO_DATA") or shared_data_dir())
    lines = []
    for i in range(count):
        relative = f"train/{arrays.labels[i]}/{i:05d}.jpg"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arrays.images[i]).resize((size, size), Image.BICUBIC).save(folder / relative, quality=90)
        lines.append(f"{relative} {arrays.labels[i]}\n")
    (folder / "ImageNet_LT_train.txt").write_text("".join(lines))
    return folder / "ImageNet_LT_train.txt"


def pil_rgb(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return opened.convert("RGB")


def rate(root: Path, train_list: Path, workers: int, epochs: int) -> float:
    """Images/s of the training loader over `epochs` epochs after a first, untimed one."""
    dataset = SplitFileDataset(root, train_list, BENCHMARKS["imagenet_lt"].num_classes,
                               benchmark_train_transform("imagenet_lt"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = image_loader(dataset, BATCH_SIZE, workers, device, sampler=RandomSampler(dataset))
    for _ in loader:
        pass
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch, _labels in loader:
            images += batch.shape[0]
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=320, help="side of the JPEGs (ImageNet's are ~400 x 350)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {args.images} JPEGs of {args.size} px, batch {BATCH_SIZE}")
    with tempfile.TemporaryDirectory() as tmp:
        train_list = write_root(Path(tmp), args.images, args.size)
        for workers in args.workers:
            for name, decoder in (("torchvision decode", splits.decode_rgb), ("PIL decode", pil_rgb)):
                original = splits.decode_rgb
                splits.decode_rgb = decoder  # forked workers inherit the patched module
                try:
                    measured = rate(Path(tmp), train_list, workers, args.epochs)
                finally:
                    splits.decode_rgb = original
                print(f"workers {workers}, {name:>18}: {measured:7.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
