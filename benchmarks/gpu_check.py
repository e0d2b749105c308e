"""One epoch of each CIFAR-10-LT recipe on the training device: images/s, loss, projected release time.

Part of `benchmarks/gpu_check.sh` (read it first). Each recipe is built exactly as `training/train.py` builds it (its
config, `build_data` on the device, the method, the model with its training heads, SGD with its parameter groups,
its LR schedule) and trains one epoch from fresh weights at epoch `--epoch` (inside every method's augmentation
window, after ConCutMix's warm-up, before DRW), under bf16 autocast on CUDA. Reported per recipe: images/s of the
steps after the first `WARMUP` (the clock stops after a device synchronisation), the mean loss of the first and
of the last tenth of the steps (finite, and the last below the first), and the projected time of the recipe's
full training (epochs × iterations per epoch at the measured rate, evaluation not included).

    python benchmarks/gpu_check.py [--dry-run] [--recipes ce bcl ...] [--json out.json]
    python benchmarks/gpu_check.py --cpu --recipes ce --steps 30 [--compile]      # eager against compiled

`--dry-run`: the CPU, fp32, two batches of 32 per recipe (checks that every recipe builds and steps; its rates
are not figures of anything).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ltzoo.scheduler import build_scheduler  # noqa: E402
from training.builders import build_run, train_step  # noqa: E402
from training.config import load_config  # noqa: E402

CONFIGS = ROOT / "training" / "configs"
# every CIFAR-10-LT (IF 100) recipe with a config; DSCL's probe stage needs its first stage's weights and is left out
RECIPES = tuple(sorted(path.name.removeprefix("resnet32_").removesuffix("_cifar10_lt.if100.yaml")
                       for path in CONFIGS.glob("resnet32_*_cifar10_lt.if100.yaml")))
WARMUP = 5  # steps left out of the rate: cuDNN autotuning, allocator growth, first kernel launches


def tiny_cifar_root(folder: Path, shared: Path) -> Path:
    """A CIFAR-10 root in `folder`: the training archive of `shared` (linked) and the first 20 test images of each
    class, so that a run's final evaluation takes seconds on a CPU."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar10_train_jpeg.npz").symlink_to(shared / "cifar10_train_jpeg.npz")
    with np.load(shared / "cifar10_test_jpeg.npz") as z:
        keep = np.concatenate([np.flatnonzero(z["y"] == c)[:20] for c in range(10)])
        jpeg, offsets = z["jpeg"], z["offsets"]
        jpegs = [jpeg[offsets[i]:offsets[i + 1]] for i in keep]
        small = {"jpeg": np.concatenate(jpegs), "offsets": np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]),
                 "y": z["y"][keep], "class_names": z["class_names"]}
    np.savez(folder / "cifar10_test_jpeg.npz", **small)
    os.utime(folder / "cifar10_test_jpeg.npz", (1_700_000_000, 1_700_000_000))
    return folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_epoch(recipe: str, device: torch.device, epoch: int, max_steps: int | None, overrides: list[str],
              compile_model: bool = False) -> dict:
    """Train `recipe` for one epoch (or `max_steps` steps) from fresh weights; its rate, losses and projection.
    `compile_model` trains through `torch.compile(model)`, as train.py's `compile: true`."""
    config = CONFIGS / f"resnet32_{recipe}_cifar10_lt.if100.yaml"
    cfg = load_config(config, overrides)
    set_seed(cfg.seed)  # as train.py: the same initial weights for eager and compiled
    run = build_run(cfg, device)
    method, loader, model = run.method, run.loader, run.model
    schedule = build_scheduler(cfg.schedule, cfg.optim.lr, cfg.epochs)
    train_model = torch.compile(model) if compile_model else model
    bf16 = device.type == "cuda"
    iters = len(loader)
    steps = iters if max_steps is None else min(iters, max_steps)
    loader.set_epoch(epoch)
    method.on_epoch_start(epoch)
    model.train()
    losses, images, start = [], 0, None
    for i, batch in enumerate(loader):
        if i == steps:
            break
        if i == min(WARMUP, steps - 1):
            sync(device)
            start, images = time.perf_counter(), 0
        loss, _ = train_step(method, train_model, run.optimizer, batch, epoch, schedule.lr_at(epoch, i, iters),
                             lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16))
        losses.append(loss.detach())
        images += batch.labels.shape[0]
    sync(device)
    seconds = time.perf_counter() - start
    values = torch.stack(losses).float().cpu()  # the one read of the epoch
    tenth = max(1, len(values) // 10)
    first, last = values[:tenth].mean().item(), values[-tenth:].mean().item()
    rate = images / seconds
    per_epoch = iters * cfg.data.batch_size / rate
    return {"recipe": recipe, "steps": len(values), "images_per_s": round(rate, 1), "loss_first": round(first, 4),
            "loss_last": round(last, 4), "finite": bool(torch.isfinite(values).all()),
            "decreasing": last < first, "epochs": cfg.epochs,
            "projected_hours": round(cfg.epochs * per_epoch / 3600, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, fp32, two batches of 32 per recipe")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--epoch", type=int, default=120, help="the (0-based) epoch to train")
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU (fp32) even where CUDA is there")
    parser.add_argument("--steps", type=int, help="stop each recipe's epoch after this many steps")
    parser.add_argument("--compile", action="store_true", help="train through torch.compile(model)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tiny-cifar-root", type=Path, metavar="DIR",
                        help="only write a CIFAR-10 root with a 200-image test split into DIR (for gpu_check.sh's "
                             "dry-run training runs) and print its path")
    args = parser.parse_args()
    if args.tiny_cifar_root:
        from ltzoo.data.sources import shared_data_dir
        shared = os.environ.get("LTZOO_DATA") or shared_data_dir()
        if shared is None:
            raise SystemExit("error: no shared CIFAR-10 archives: set LTZOO_DATA to the folder holding them")
        print(tiny_cifar_root(args.tiny_cifar_root, Path(shared)))
        return
    if args.dry_run:
        device, max_steps, overrides = torch.device("cpu"), 2, ["data.batch_size=32"]
    elif args.cpu or torch.cuda.is_available():
        device, max_steps, overrides = torch.device("cpu" if args.cpu else "cuda"), args.steps, []
    else:
        raise SystemExit("error: no CUDA device; run with --dry-run to check the steps on the CPU")
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else "CPU (dry run)" if args.dry_run else f"CPU, {torch.get_num_threads()} threads")
    print(f"{name}, torch {torch.__version__}, epoch {args.epoch}{', compiled' if args.compile else ''}", flush=True)
    results, failed = [], []
    for recipe in args.recipes:
        result = one_epoch(recipe, device, args.epoch, max_steps, overrides, args.compile)
        results.append(result)
        ok = result["finite"] and (result["decreasing"] or args.dry_run)
        failed += [] if ok else [recipe]
        print(f"{recipe:>13}: {result['images_per_s']:>9.1f} images/s over {result['steps']} steps, loss "
              f"{result['loss_first']:.3f} -> {result['loss_last']:.3f}, {result['epochs']} epochs ~ "
              f"{result['projected_hours']:.2f} h{'' if ok else '  FAILED'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "results": results}, indent=1))
    if failed:
        raise SystemExit(f"error: non-finite or non-decreasing loss: {', '.join(failed)}")


if __name__ == "__main__":
    main()
