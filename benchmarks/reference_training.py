"""Control for the gap to the papers: the 200-epoch CE recipe trained by an independent loop on the same data.

The loop is written the way kaidic/LDAM-DRW's cifar_train.py trains (fp32, per-image PIL RandomCrop(32, 4) +
flip + ToTensor + Normalize through a shuffling DataLoader, `nn.CrossEntropyLoss`, SGD 0.1 / 0.9 / 2e-4 on every
parameter, LR set once per epoch: e/5·0.1 for the first 5 epochs, ×0.01 after 160, ×0.0001 after 180) and shares
nothing with `training/train.py` but the ResNet-32 definition and the CIFAR-10-LT subset. One liberty: model and
inputs use the channels_last memory layout (the same fp32 convolutions; on one thread of the 2-core AVX-512 CPU,
0.8 s per step against 1.1 s in NCHW, seen in this script's progress bar beside another training run).
If it lands where the release does, the gap lies in the data, not in ltzoo's loop; if it lands near the paper,
ltzoo's loop is at fault.
It keeps a resumable checkpoint per epoch (rerun the same command to continue), logs test top-1 to TensorBoard,
reports the final and the best epoch's test top-1 (the official code reports the best), and exports the final
weights as safetensors for `ltzoo validate --checkpoint`.
Usage: python benchmarks/reference_training.py [--run-dir ~/.cache/ltzoo/runs/reference_ce] [--epochs 200]
       [--eval-every 10] [--threads 1] [--json results/reference_ce.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms
from tqdm import tqdm

import ltzoo
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.cifar import CifarDataset, cifar_lt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training.export import portable  # noqa: E402  (bookkeeping only: the JSON names no path of this machine)

MODEL = "resnet32_ce_cifar10_lt"
BASE_LR = 0.1


def reference_lr(epoch: int, warmup: int = 5) -> float:
    """LDAM-DRW's per-epoch LR for 0-based `epoch`: linear warm-up, then ×0.01 after epoch 160 and ×0.0001 after 180."""
    step = epoch + 1
    if step <= warmup:
        return BASE_LR * step / warmup
    if step > 180:
        return BASE_LR * 1e-4
    if step > 160:
        return BASE_LR * 1e-2
    return BASE_LR


def test_top1(model: nn.Module, loader: DataLoader) -> float:
    """Plain top-1 (%) over a test loader, fp32, in eval mode."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += int((model(inputs.to(memory_format=torch.channels_last)).argmax(1) == targets).sum())
            total += targets.numel()
    model.train()
    return 100.0 * correct / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("~/.cache/ltzoo/runs/reference_ce"))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=10, help="test every N epochs (and every epoch after 160)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, help="write the test curve, final and best top-1 here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = args.run_dir.expanduser()
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"

    train = cifar_lt("cifar10", "train", 100)
    test = cifar_lt("cifar10", "test")
    normalize = [transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    augment = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), *normalize])
    test_loader = DataLoader(CifarDataset(test, transforms.Compose(normalize)), batch_size=100)

    torch.manual_seed(args.seed)
    model = ltzoo.create_model(MODEL).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=BASE_LR, momentum=0.9, weight_decay=2e-4)
    criterion = nn.CrossEntropyLoss()
    start_epoch, curve, seconds = 0, {}, 0.0
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start_epoch, seconds = state["epoch"] + 1, state["seconds"]
        curve = {int(k): v for k, v in state["curve"].items()}
        print(f"resumed after epoch {start_epoch} from {state_path}")
    train_loader = DataLoader(CifarDataset(train, augment), batch_size=128, shuffle=True)
    writer = SummaryWriter(str(run_dir / "tb"))
    print(f"{len(train)} training images ({train.source}); {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} thread(s), fp32")
    model.train()
    for epoch in range(start_epoch, args.epochs):
        started = time.perf_counter()
        lr = reference_lr(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        for inputs, targets in bar:
            loss = criterion(model(inputs.to(memory_format=torch.channels_last)), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.0e}")
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 > 160 or epoch + 1 == args.epochs:
            curve[epoch + 1] = test_top1(model, test_loader)
            writer.add_scalar("test/top1", curve[epoch + 1], epoch + 1)
            print(f"epoch {epoch + 1}: test top-1 {curve[epoch + 1]:.2f}", flush=True)
        seconds += time.perf_counter() - started
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
                    "epoch": epoch, "seconds": seconds, "curve": {str(k): v for k, v in curve.items()}},
                   run_dir / "state.tmp")
        (run_dir / "state.tmp").replace(state_path)
    writer.close()
    weights = run_dir / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    best = max(curve, key=curve.get)
    print(f"final (epoch {args.epochs}) test top-1 {curve[args.epochs]:.2f}; best {curve[best]:.2f} at epoch {best}; "
          f"{seconds / 3600:.1f} h; weights: {weights}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(portable({
            "command": "python benchmarks/reference_training.py " + " ".join(sys.argv[1:]),
            "data": train.source, "epochs": args.epochs, "seed": args.seed, "precision": "fp32",
            "final_top1": curve[args.epochs], "best_top1": curve[best], "best_epoch": best,
            "hours": round(seconds / 3600, 2), "test_top1_by_epoch": curve}), indent=2) + "\n")


if __name__ == "__main__":
    main()
