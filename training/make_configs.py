"""Write `training/configs/<name>.<tag>.yaml` for the registry entries whose method has a recipe here.

The YAML files are the source of truth (committed); this script only keeps them consistent with the recipes documented
in docs/methods/. Run: python training/make_configs.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo import registry  # noqa: E402
from ltzoo.benchmarks import imb_factor_of  # noqa: E402

CONFIG_DIR = Path(__file__).with_name("configs")

# docs/methods/baselines.md §5: CIFAR-LT (LDAM-DRW / CMO), ImageNet-LT and iNat (CMO), Places-LT (OLTR)
CIFAR_RECIPE = {
    "epochs": 200, "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 2.0e-4},
    "schedule": {"name": "warmup_step", "warmup_epochs": 5, "milestones": [160, 180], "gammas": [0.01, 0.01]},
    "batch_size": 128, "drw_start": 160,
}
LARGE_RECIPES = {
    "imagenet_lt": {
        "epochs": 100, "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 2.0e-4},
        "schedule": {"name": "warmup_step", "warmup_epochs": 5, "milestones": [60, 80], "gammas": [0.1, 0.1]},
        "batch_size": 128, "drw_start": 80,
    },
    "inat2018": {
        "epochs": 100, "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 2.0e-4},
        "schedule": {"name": "warmup_step", "warmup_epochs": 5, "milestones": [75, 160], "gammas": [0.1, 0.1]},
        "batch_size": 256, "drw_start": 160,
    },
    "places_lt": {
        "epochs": 30, "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5.0e-4, "backbone_lr_scale": 0.01},
        "schedule": {"name": "warmup_step", "warmup_epochs": 0, "milestones": [10, 20], "gammas": [0.1, 0.1]},
        "batch_size": 128, "drw_start": None,
    },
}
BASELINE_METHODS = {"ce": {}, "ce_drw": {"drw": True}, "ldam_drw": {"drw": True}, "bsce": {}}


def baseline_config(entry: registry.ZooEntry, tag: str) -> dict[str, Any]:
    recipe = CIFAR_RECIPE if entry.dataset.startswith("cifar") else LARGE_RECIPES[entry.dataset]
    epochs = recipe["epochs"]
    if tag.startswith("e") and tag[1:].isdigit():
        epochs = int(tag[1:])
    data: dict[str, Any] = {"dataset": entry.dataset, "batch_size": recipe["batch_size"]}
    imb = imb_factor_of(entry.dataset, tag)
    if imb is not None:
        data["imb_factor"] = imb
    else:
        data["root"] = None
    method: dict[str, Any] = {"name": entry.method}
    if BASELINE_METHODS[entry.method].get("drw"):
        method["drw_start"] = recipe["drw_start"]
    config: dict[str, Any] = {
        "name": entry.name, "tag": tag, "epochs": epochs, "seed": 0, "data": data, "method": method,
        "optim": dict(recipe["optim"]), "schedule": dict(recipe["schedule"]),
    }
    if entry.dataset == "places_lt":
        config["model"] = {"pretrained_backbone": True}  # ImageNet-1k start, OLTR's Places-LT protocol
    return config


def main() -> None:
    CONFIG_DIR.mkdir(exist_ok=True)
    written = 0
    for name in registry.list_models():
        entry = registry.get_entry(name)
        if entry.method not in BASELINE_METHODS:
            continue
        for tag in entry.tags:
            path = CONFIG_DIR / f"{entry.name}.{tag}.yaml"
            path.write_text(yaml.safe_dump(baseline_config(entry, tag), sort_keys=False))
            written += 1
    print(f"wrote {written} configs to {CONFIG_DIR}")


if __name__ == "__main__":
    main()
