"""Export a trained model as a release folder: weights, config.json with metrics measured by `ltzoo validate`, card."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from torch import nn

from ltzoo import registry
from ltzoo.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from ltzoo.validate import validate
from training.model_card import render_model_card

ROOT = Path(__file__).resolve().parents[1]
RELEASES = ROOT / "releases"


def repo_path(path: str) -> str:
    """`path` relative to the repository when it lies inside it (as recipes are named), else absolute."""
    resolved = Path(path).resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)


def train_command(entry: registry.ZooEntry, tag: str, config_path: str, overrides: list[str]) -> str:
    """The command that rebuilds these weights: the registry's (every stage) for its own recipe, else this config;
    command-line overrides (an ablation's, say) are part of it."""
    config = repo_path(config_path)
    base = (entry.train_command(tag) if config == entry.recipe(tag)
            else f"accelerate launch training/train.py --config {config}")
    return " ".join([base, *map(shlex.quote, overrides)])


def local_weights(release: Path) -> str | None:
    """The weights file a release folder's card loads by path; None for a folder of `releases/`, which the Hub
    publishes (an ablation's folder is not published, so `pretrained=True` would load another model)."""
    return None if release.resolve().parent == RELEASES else repo_path(str(release / WEIGHTS_NAME))


def validate_command(full_name: str, release: Path) -> str:
    return f"ltzoo validate {full_name} --checkpoint {release / WEIGHTS_NAME}"


def export_release(
    model: nn.Module, cfg: Any, config_path: str, overrides: list[str], *, heads_spec: dict | None,
    train_seconds: float, history: list[dict], precision: str, data_source: str, selection: dict[str, Any],
    earlier_stage: dict[str, Any] | None = None,
) -> Path:
    """Write `releases/<name>.<tag>/`, then measure it with `ltzoo validate` and record the metrics in it;
    `earlier_stage` is what trained the checkpoint this run started from (a probe's stage 1), for the card."""
    entry, tag = registry.resolve(cfg.full_name)
    out = Path(cfg.release_dir) / cfg.full_name
    meta: dict[str, Any] = {
        "name": entry.name, "tag": tag, "method": entry.method, "dataset": entry.dataset,
        "recipe": repo_path(config_path), "paper": registry.METHODS[entry.method].paper,
        "train_command": train_command(entry, tag, config_path, overrides),
        "config": cfg.to_dict(), "train_seconds": round(train_seconds, 1), "history": history,
        "precision": precision, "data_source": data_source, "selection": selection,
        "recipe_origin": "ltzoo" if (entry.method, entry.dataset) in registry.LTZOO_RECIPES else "paper",
    }
    if earlier_stage is not None:
        meta["earlier_stage"] = earlier_stage
    model.eval()
    save_pretrained(model, out, ltzoo_meta=meta, heads_spec=heads_spec)
    result = validate(cfg.full_name, checkpoint=str(out / WEIGHTS_NAME), data_dir=cfg.data.root, progress=False)
    record_metrics(out, result.to_dict(include_confusion=False), validate_command(cfg.full_name, out))
    return out


def record_metrics(release: Path, metrics: dict[str, Any], command: str) -> None:
    """Store measured metrics (and the command that measured them) in config.json and regenerate the card."""
    config_file = release / CONFIG_NAME
    config = json.loads(config_file.read_text())
    keep = ("top1", "top5", "many", "medium", "few", "ece", "group_sizes", "per_class", "num_images")
    config["ltzoo"]["metrics"] = {k: metrics[k] for k in keep if k in metrics}
    config["ltzoo"]["validate_command"] = command
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    (release / CARD_NAME).write_text(render_model_card(config, local_weights(release)))
