"""Export a trained model as a release folder: weights, config.json with metrics measured by `ltzoo validate`, card."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from torch import nn

from ltzoo import registry
from ltzoo.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained, sha256_file
from ltzoo.validate import validate
from training import recipes
from training.config import ConfigError, TrainConfig, load_config
from training.model_card import render_model_card

ROOT = Path(__file__).resolve().parents[1]
RELEASES = ROOT / "releases"
EXPORT = "export"  # <run_dir>/export/<name>.<tag>/: where a run that is not a release exports by default
MACHINE_KEYS = ("run_dir", "release_dir", "data.root")  # where this machine keeps things; not part of a recipe
_ABSOLUTE_DIRS = re.compile(r"(?<![\w.~])/(?:[^\s/,;:'\"`()]+/)+")  # the directories of an absolute path


class ReleaseError(ConfigError):
    """An export that would write into releases/ without being asked to, or replace a release's weights."""


def repo_path(path: str) -> str:
    """`path` relative to the repository when it lies inside it (as recipes are named), else absolute."""
    resolved = Path(path).resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)


def in_repository(path: str | Path) -> Path:
    """`path` with `~` expanded, a relative one taken from the repository (as configs and the queue name them)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path


def in_releases(path: Path) -> bool:
    """Whether `path` is the repository's releases/ folder or lies inside it."""
    return in_repository(path).resolve().is_relative_to(RELEASES.resolve())


def export_dir(cfg: TrainConfig, config_path: str, release: bool) -> Path:
    """The folder a run exports `<name>.<tag>/` into: releases/ with `release` (only for the recipe file unchanged),
    else `release_dir` when given (never releases/; relative to the repository), else `<run_dir>/export`. Raises
    ReleaseError otherwise."""
    if release:
        if cfg.release_dir is not None and not in_releases(Path(cfg.release_dir)):
            raise ReleaseError(f"--release publishes into {repo_path(str(RELEASES))}/; drop release_dir="
                               f"{cfg.release_dir} (or drop --release to export there)")
        recipe = load_config(config_path)
        if cfg.fingerprint() != recipe.fingerprint():
            raise ReleaseError(
                f"--release publishes only the recipe {config_path} unchanged, and these overrides change it "
                f"(fingerprint {cfg.fingerprint()} vs the file's {recipe.fingerprint()}); drop --release to export "
                f"into {cfg.resolved_run_dir() / EXPORT}, or give release_dir=DIR (outside releases/)")
        return RELEASES
    if cfg.release_dir is None:
        return cfg.resolved_run_dir() / EXPORT
    out = in_repository(cfg.release_dir)
    if in_releases(out):
        raise ReleaseError(f"release_dir={cfg.release_dir} is the published releases folder; only --release writes "
                           "there (the recipe file unchanged). Export elsewhere, e.g. release_dir=results/ablations/X")
    return out


def check_overwrite(out: Path, new_sha256: str | None, force: bool) -> None:
    """Refuse to replace the weights of the release in `out` with others unless `force`: `new_sha256` None means
    the new weights are not trained yet (a start-up check), so any existing release is refused."""
    existing = out / WEIGHTS_NAME
    if force or not in_releases(out) or not existing.is_file():
        return
    old = sha256_file(existing)
    if new_sha256 is None:
        raise ReleaseError(f"{repo_path(str(out))} is already released (model.safetensors sha256 {old}); this run "
                           "would replace it with weights not trained yet: pass --force to replace it")
    if new_sha256 != old:
        raise ReleaseError(f"{repo_path(str(out))} holds model.safetensors sha256 {old}; this run's weights are "
                           f"sha256 {new_sha256}: pass --force to replace the release")


def portable(value: Any) -> Any:
    """`value` (a JSON-like tree) with no machine path in its strings: paths inside the repository become relative,
    the home folder `~`, any other absolute path is cut to its file name (a data archive, say)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        return _ABSOLUTE_DIRS.sub("", value.replace(f"{ROOT}/", "").replace(f"{Path.home()}/", "~/"))
    return value


def recipe_overrides(overrides: list[str]) -> list[str]:
    """The overrides that change what is trained: those of MACHINE_KEYS say where this machine keeps things."""
    return [o for o in overrides if o.split("=", 1)[0].strip() not in MACHINE_KEYS]


def train_command(full_name: str, config_path: str, overrides: list[str]) -> str:
    """The command that rebuilds these weights: the recipe's (every stage) for its own config, else this config;
    command-line overrides (an ablation's, say) are part of it, except where this machine keeps things."""
    config = repo_path(config_path)
    base = (recipes.train_command(full_name) if config == recipes.release_config(full_name)
            else f"{recipes.LAUNCH} {config}")
    return " ".join([base, *map(shlex.quote, recipe_overrides(overrides))])


def local_weights(release: Path) -> str | None:
    """The weights file a release folder's card loads by path: relative to the repository inside it, else to the
    folder itself; None for a folder of `releases/`, which the Hub publishes (an ablation's folder is not
    published, so `pretrained=True` would load another model)."""
    if release.resolve().parent == RELEASES.resolve():
        return None
    return repo_path(str(release / WEIGHTS_NAME)) if release.resolve().is_relative_to(ROOT) else WEIGHTS_NAME


def validate_command(full_name: str, release: Path) -> str:
    """The command that measured `release`; its path is relative to the repository, or to the folder outside it."""
    inside = release.resolve().is_relative_to(ROOT)
    weights = repo_path(str(release / WEIGHTS_NAME)) if inside else WEIGHTS_NAME
    return f"ltzoo validate {full_name} --checkpoint {weights}"


def export_release(
    model: nn.Module, cfg: TrainConfig, config_path: str, overrides: list[str], *, out: Path, heads_spec: dict | None,
    train_seconds: float, history: list[dict], precision: str, data_source: str, selection: dict[str, Any],
    earlier_stage: dict[str, Any] | None = None,
) -> Path:
    """Write the folder `out` (see export_dir), then measure it with `ltzoo validate` and record the metrics in it;
    `earlier_stage` is what trained the checkpoint this run started from (a probe's stage 1), for the card."""
    entry, tag = registry.resolve(cfg.full_name)
    config = {k: v for k, v in cfg.to_dict().items() if k not in MACHINE_KEYS}
    config["data"] = {k: v for k, v in config["data"].items() if f"data.{k}" not in MACHINE_KEYS}
    meta: dict[str, Any] = {
        "name": entry.name, "tag": tag, "method": entry.method, "dataset": entry.dataset,
        "recipe": repo_path(config_path), "paper": registry.METHODS[entry.method].paper,
        "train_command": train_command(cfg.full_name, config_path, overrides),
        "config": config, "train_seconds": round(train_seconds, 1), "history": history,
        "precision": precision, "data_source": data_source, "selection": selection,
        "recipe_origin": "ltzoo" if entry.ltzoo_recipe else "paper",
    }
    if earlier_stage is not None:
        meta["earlier_stage"] = earlier_stage
    model.eval()
    save_pretrained(model, out, ltzoo_meta=portable(meta), heads_spec=heads_spec)
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
