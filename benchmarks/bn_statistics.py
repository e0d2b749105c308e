"""How much of a trained CIFAR-LT model's accuracy sits in its BatchNorm running statistics, per kind of batch.

CMO's gate (3 < e < E − 3), which SMCL's and LSM's recipes used before they moved to augmenting up to the last
epoch, trains the last three epochs on plain batches only, so such a model ends with BN statistics of plain images
although its weights were trained on augmented batches half the time. This script keeps the weights and re-estimates
only the statistics: it resets every BN layer's running mean and variance, runs `--batches` of the method's own
training forward passes (no backward, no weight change) built with each variant's config, writes the result to a
safetensors file and measures it with `ltzoo validate`.
Usage: python benchmarks/bn_statistics.py resnet32_ce_drw_lsm_cifar10_lt.if100 \
           --checkpoint results/ablations/paper_recipe/resnet32_ce_drw_lsm_cifar10_lt.if100/model.safetensors \
           --variants method.p_mix=0 method.p_mix=0.5 method.p_mix=1 [--epoch 190] [--batches 60] [--json FILE]
Each variant is overrides of the entry's training config (space-separated key=value, as train.py takes them); the
batches come from that config's own data pipeline and method.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ltzoo import registry
from ltzoo.models import inference_state_dict
from ltzoo.validate import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package
from training.builders import build_config_method, build_training_model  # noqa: E402
from training.config import TrainConfig, load_config  # noqa: E402
from training.data import build_data  # noqa: E402
from training.recipes import release_config  # noqa: E402


def variant_config(name: str, overrides: list[str]) -> TrainConfig:
    """The training config of zoo entry `name` with `overrides` applied."""
    return load_config(ROOT / release_config(name), overrides)


def restat(checkpoint: str | Path, cfg: TrainConfig, epoch: int, batches: int) -> nn.Module:
    """The checkpoint's model with BN running statistics averaged over `batches` training forwards of `cfg`."""
    data = build_data(cfg, registry.get_pretrained_cfg(cfg.full_name))
    method = build_config_method(cfg, data.class_counts)
    loader = data.make_train(method)
    model = build_training_model(cfg, method, checkpoint)  # training-only heads only run forward: no BN in them
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
    model.train()
    loader.set_epoch(epoch)
    method.on_epoch_start(epoch)
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i == batches:
                break
            method.training_step(model, batch, epoch)
    return model.eval()


def measure(name: str, variant: str, weights: str | Path, data_dir: str | None) -> dict:
    """`ltzoo validate` of `weights` as zoo entry `name`: printed as one line and returned as a table row."""
    result = validate(name, checkpoint=weights, data_dir=data_dir, progress=False)
    print(f"{variant:24s} top-1 {result.top1:6.2f}  many {result.many:6.2f}  medium {result.medium:6.2f}", flush=True)
    return {"variant": variant, "top1": result.top1, "many": result.many, "medium": result.medium, "few": result.few}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--variants", nargs="+", required=True,
                        help="config overrides per variant, e.g. 'method.p_mix=0'")
    parser.add_argument("--epoch", type=int, default=190, help="the epoch the method's schedule is evaluated at")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--data-dir", help="data.root for every variant")
    parser.add_argument("--json")
    args = parser.parse_args()
    common = [f"data.root={args.data_dir}"] if args.data_dir else []

    rows = [measure(args.name, "as trained", args.checkpoint, args.data_dir)]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            cfg = variant_config(args.name, [*common, *variant.split()])
            model = restat(args.checkpoint, cfg, args.epoch, args.batches)
            weights = Path(tmp) / "model.safetensors"
            save_file({k: v.contiguous() for k, v in inference_state_dict(model).items()}, weights)
            rows.append(measure(args.name, variant, weights, args.data_dir))
    if args.json:
        record = {"command": "python " + " ".join(sys.argv), "name": args.name, "checkpoint": args.checkpoint,
                  "epoch": args.epoch, "batches": args.batches, "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
