"""How much of a trained CIFAR-LT model's accuracy sits in its BatchNorm running statistics, per kind of batch.

CMO's gate (3 < e < E − 3), which SMCL and LSM reuse, trains the last three epochs on plain batches only, so a
release ends with BN statistics of plain images although its weights were trained on augmented batches half the
time. This script keeps the weights and re-estimates only the statistics: it resets every BN layer's running mean
and variance, runs `--batches` of the method's own training forward passes (no backward, no weight change) built
with each variant's method options, writes the result to a safetensors file and measures it with `ltzoo validate`.
Usage: python benchmarks/bn_statistics.py resnet32_ce_drw_lsm_cifar10_lt.if100 \
           --checkpoint releases/resnet32_ce_drw_lsm_cifar10_lt.if100/model.safetensors \
           --method ce_drw_lsm --variants p_mix=0 p_mix=0.5 p_mix=1 [--epoch 190] [--batches 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file
from torch import nn

import ltzoo
from ltzoo import registry
from ltzoo.data import ArrayLoader, cifar_lt
from ltzoo.data.cifar import ZOO_CIFAR_DATASETS
from ltzoo.methods import TrainSet, build_method
from ltzoo.models import build_train_heads, inference_state_dict
from ltzoo.validate import validate

BATCH_SIZE = 128


def parse_variant(text: str) -> dict[str, Any]:
    """'p_mix=0.5 mix_end=0' -> {"p_mix": 0.5, "mix_end": 0} (values parsed as YAML, as config overrides are)."""
    options = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"a variant is key=value pairs of method options, got {item!r}")
        options[key] = yaml.safe_load(value)
    return options


def restat(name: str, checkpoint: str, method_name: str, options: dict[str, Any], epoch: int, batches: int,
           data_dir: str | None) -> nn.Module:
    """The checkpoint's model with BN running statistics averaged over `batches` training forwards of the method."""
    entry, _ = registry.resolve(name)
    cfg = registry.get_pretrained_cfg(name)
    train = cifar_lt(ZOO_CIFAR_DATASETS[entry.dataset], "train", cfg["imb_factor"], root=data_dir)
    method = build_method(method_name, np.bincount(train.labels), 200, **options)
    model = ltzoo.create_model(name, checkpoint_path=checkpoint)
    spec = method.heads_spec(model.num_features)
    if spec:
        model.train_heads.update(build_train_heads(spec))  # only their forward runs; they hold no BN statistics
    model = model.to(memory_format=torch.channels_last)
    method.bind_data(TrainSet(train.labels, BATCH_SIZE, 0, cfg["mean"], cfg["std"], images=train.images))
    method.prepare_model(model)
    loader = ArrayLoader(train.images, train.labels, BATCH_SIZE, method.cifar_transform(cfg["mean"], cfg["std"]),
                         seed=0)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--method", required=True, help="the method whose training step forms the batches")
    parser.add_argument("--variants", nargs="+", required=True, help="method options per variant, e.g. 'p_mix=0'")
    parser.add_argument("--epoch", type=int, default=190, help="the epoch the method's schedule is evaluated at")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--data-dir")
    parser.add_argument("--json")
    args = parser.parse_args()

    release = validate(args.name, checkpoint=args.checkpoint, data_dir=args.data_dir, progress=False)
    rows = [{"variant": "as trained", "top1": release.top1, "many": release.many, "medium": release.medium,
             "few": release.few}]
    print(f"{'as trained':24s} top-1 {release.top1:6.2f}  many {release.many:6.2f}  medium {release.medium:6.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            model = restat(args.name, args.checkpoint, args.method, parse_variant(variant), args.epoch, args.batches,
                           args.data_dir)
            weights = Path(tmp) / "model.safetensors"
            save_file({k: v.contiguous() for k, v in inference_state_dict(model).items()}, weights)
            result = validate(args.name, checkpoint=weights, data_dir=args.data_dir, progress=False)
            rows.append({"variant": variant, "top1": result.top1, "many": result.many, "medium": result.medium,
                         "few": result.few})
            print(f"{variant:24s} top-1 {result.top1:6.2f}  many {result.many:6.2f}  medium {result.medium:6.2f}",
                  flush=True)
    if args.json:
        record = {"command": "python " + " ".join(sys.argv), "name": args.name, "checkpoint": args.checkpoint,
                  "method": args.method, "epoch": args.epoch, "batches": args.batches, "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
