"""Bitwise CPU digests of the training data pipelines and of a tiny run per CIFAR-10-LT method.

Moving augmentation onto the training device must not change a single bit on CPU. This script records sha256
digests of seeded augmented batches of every CIFAR pipeline (ArrayLoader order + batch transform) and of the final
weights of a two-epoch `training/train.py` run (1,024 images, batch 256: four steps per epoch) per CIFAR-10-LT
recipe, with method options set so every code path, mixing included, runs within the two epochs; CPU, fp32:

    python benchmarks/cpu_parity.py --out tests/data/cpu_parity.json            # record
    python benchmarks/cpu_parity.py --check tests/data/cpu_parity.json          # compare (exit 1 on a difference)

Float kernels differ between CPU generations, so a record is only comparable on the platform it names (`platform`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpu_check import tiny_cifar_root  # noqa: E402  (benchmarks/, the folder of this script)

from ltzoo.augment.dscl_crops import dscl_views  # noqa: E402
from ltzoo.augment.randaugment import RandAugment  # noqa: E402
from ltzoo.augment.views import (  # noqa: E402
    MultiView,
    cifar_autoaugment_transform,
    cifar_contrastive_transform,
    cifar_train_transform,
)
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from ltzoo.data import ArrayLoader  # noqa: E402
from ltzoo.data.sources import shared_data_dir  # noqa: E402


def data_dir() -> Path:
    """The folder of the shared CIFAR archives: $LTZOO_DATA, else the workplace's shared data folder."""
    folder = os.environ.get("LTZOO_DATA") or shared_data_dir()
    if folder is None or not (Path(folder) / "cifar10_train_jpeg.npz").is_file():
        raise SystemExit("needs the shared CIFAR-10 archives: set LTZOO_DATA to the folder holding cifar10_*_jpeg.npz")
    return Path(folder)

# recipe -> overrides that make every branch of the method run within two epochs of four steps
RUNS: dict[str, list[str]] = {
    "ce": [],
    "ce_drw": ["method.drw_start=1"],
    "ldam_drw": ["method.drw_start=1"],
    "bsce": [],
    "la": [],
    "bcl": [],
    "concutmix": ["method.warm_epoch=0"],
    "ce_lsm": ["method.mix_start=-1", "method.mix_end=0"],
    "ce_drw_lsm": ["method.mix_start=-1", "method.mix_end=0", "method.drw_start=1"],
    "ldam_drw_lsm": ["method.mix_start=-1", "method.mix_end=0", "method.drw_start=1"],
    "cmo": ["method.aug_start=-1", "method.aug_end=0", "method.drw_start=1"],
    "smcl": ["method.aug_start=-1", "method.aug_end=0", "method.drw_start=1"],
    "dscl": ["method.queue_size=512"],
}
TINY = ["epochs=2", "data.subset=1024", "data.batch_size=256", "precision=fp32", "--no-export"]
DIGEST = re.compile(r"\[rank 0/1\] final weights sha256 ([0-9a-f]{64})")


def platform_key() -> str:
    """What float results depend on: CPU model, the kernels torch picks for it (AVX2, AVX512, …: machines named
    alike differ here), torch version, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kernels = torch.backends.cpu.get_cpu_capability()
    return f"{cpu} ({kernels}) | torch {torch.__version__} | {torch.get_num_threads()} threads"


def batch_digest(images: torch.Tensor | tuple, labels: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (*(images if isinstance(images, tuple) else (images,)), labels):
        if isinstance(tensor, tuple):  # DSCL's crop set: (global crop, patches, boxes)
            for part in tensor:
                digest.update(part.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def pipelines() -> dict[str, Callable[[], Any]]:
    """Every batched CIFAR training pipeline the methods use."""
    from ltzoo.methods import build_method
    counts = [100] * 10
    return {
        "crop_flip": lambda: cifar_train_transform(CIFAR_MEAN, CIFAR_STD),
        "autoaugment": lambda: cifar_autoaugment_transform(CIFAR_MEAN, CIFAR_STD),
        "contrastive": lambda: cifar_contrastive_transform(CIFAR_MEAN, CIFAR_STD),
        "randaugment": lambda: MultiView([RandAugment(2, 10.0, 0.5)]),
        "bcl_views": lambda: build_method("bcl", counts, 2).cifar_transform(CIFAR_MEAN, CIFAR_STD),
        "dscl_views": lambda: dscl_views(CIFAR_MEAN, CIFAR_STD, 32, (0.2, 1.0), 5, 16, (0.05, 0.6), blur=False),
    }


def cifar_images(count: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` real CIFAR-10 training images of the shared data folder."""
    from ltzoo.data.sources import load_cifar
    arrays = load_cifar("cifar10", train=True, root=data_dir())
    return arrays.images[:count], arrays.labels[:count]


def pipeline_digests(device: str = "cpu") -> dict[str, list[str]]:
    """Two seeded batches of 64 (epoch 0 and epoch 1) of each pipeline over real CIFAR-10 images."""
    images, labels = cifar_images()
    out = {}
    for name, make in pipelines().items():
        placement = {} if device == "cpu" else {"device": device}  # the record predates ArrayLoader(device=...)
        loader = ArrayLoader(images, labels, 64, make(), seed=3, **placement)
        digests = []
        for epoch in (0, 1):
            loader.set_epoch(epoch)
            batch = next(iter(loader))
            digests.append(batch_digest(batch.images, batch.labels))
        out[name] = digests
    return out


def run_digests(methods: list[str]) -> dict[str, str]:
    """Final-weights sha256 of the tiny two-epoch train.py run of each recipe."""
    out = {}
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("LTZOO_DATA", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = tiny_cifar_root(Path(tmp), data_dir())
        for method in methods:
            config = ROOT / "training" / "configs" / f"resnet32_{method}_cifar10_lt.if100.yaml"
            command = [sys.executable, str(ROOT / "training" / "train.py"), "--config", str(config), *TINY,
                       *RUNS[method], f"data.root={root}", f"run_dir={tmp}/run_{method}",
                       f"release_dir={tmp}/releases"]
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            found = DIGEST.findall(result.stdout)
            if result.returncode or not found:
                raise SystemExit(f"{method}: train.py failed\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
            out[method] = found[-1]
            print(f"{method}: {found[-1]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the digests here")
    group.add_argument("--check", type=Path, help="compare against this record; exit 1 on a difference")
    parser.add_argument("--methods", nargs="*", default=list(RUNS), help="recipes to run (default: all)")
    args = parser.parse_args()
    record = {"platform": platform_key(), "pipelines": pipeline_digests(), "runs": run_digests(args.methods)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        return
    reference = json.loads(args.check.read_text())
    if reference["platform"] != record["platform"]:
        raise SystemExit(f"record is from {reference['platform']!r}, this is {record['platform']!r}: not comparable")
    differ = [f"pipeline {k}" for k in record["pipelines"] if record["pipelines"][k] != reference["pipelines"][k]]
    differ += [f"run {k}" for k in record["runs"] if record["runs"][k] != reference["runs"].get(k)]
    print("bitwise equal" if not differ else f"DIFFERENT: {', '.join(differ)}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
