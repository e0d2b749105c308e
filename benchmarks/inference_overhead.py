"""Inference overhead of an ltzoo model over the bare timm model it wraps: ResNet-50, same weights, same input.

Builds `resnet50_ce_imagenet_lt` through `ltzoo.create_model` and `timm.create_model("resnet50")`, copies the weights
so both compute the same function (checked), warms up, then times them alternately, in back-to-back pairs, and
compares them by the median of the per-pair time ratios (robust to load that drifts during the run).
Exits with status 1 when ltzoo is slower than timm by more than `--max-overhead`.

Usage: python benchmarks/inference_overhead.py [--repeats 15] [--batch-size 8] [--max-overhead 0.02] [--threads N]
On a machine shared with other jobs, `--threads 1` is much steadier than torch's default thread count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import timm
import torch
from torch import nn

import ltzoo

ZOO_NAME = "resnet50_ce_imagenet_lt"


def timm_twin(model: nn.Module) -> nn.Module:
    """A bare timm ResNet-50 holding the ltzoo model's weights (backbone.* → *, fc.* → fc.*)."""
    twin = timm.create_model("resnet50", num_classes=model.num_classes)
    state = {k.removeprefix("backbone."): v for k, v in model.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    return twin.eval()


def time_once(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each model first")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each model, alternating")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-overhead", type=float, default=0.02, help="fail above this relative slowdown")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    zoo = ltzoo.create_model(ZOO_NAME).eval()
    bare = timm_twin(zoo)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)

    with torch.inference_mode():
        out_zoo, out_bare = zoo(x), bare(x)
        torch.testing.assert_close(out_zoo, out_bare, rtol=0, atol=0)
        for _ in range(args.warmup):
            zoo(x), bare(x)
        times: dict[str, list[float]] = {"ltzoo": [], "timm": []}
        for i in range(args.repeats):
            # Alternate which goes first, so neither always follows the other (caches, frequency changes).
            order = [("ltzoo", zoo), ("timm", bare)] if i % 2 == 0 else [("timm", bare), ("ltzoo", zoo)]
            for label, model in order:
                times[label].append(time_once(model, x))

    med = {label: statistics.median(ts) for label, ts in times.items()}
    # Gate on the median of per-pair ratios: each pair ran back to back, so slow drifts in load cancel.
    ratio = statistics.median(a / b for a, b in zip(times["ltzoo"], times["timm"]))
    print(f"ResNet-50, batch {args.batch_size}, {args.img_size} px, {torch.get_num_threads()} threads, "
          f"{args.repeats} alternating runs each; outputs identical")
    for label, ts in times.items():
        print(f"  {label:6s} median {med[label] * 1e3:8.1f} ms   (min {min(ts) * 1e3:.1f}, max {max(ts) * 1e3:.1f})")
    print(f"  ratio of medians ltzoo/timm = {med['ltzoo'] / med['timm']:.4f}, "
          f"of minima = {min(times['ltzoo']) / min(times['timm']):.4f}")
    print(f"  median paired ratio ltzoo/timm = {ratio:.4f}  "
          f"(overhead {100 * (ratio - 1):+.2f} %, limit {100 * args.max_overhead:.1f} %)")
    if ratio - 1 > args.max_overhead:
        print("FAIL: ltzoo's overhead is above the limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
