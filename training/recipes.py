"""Where a zoo recipe lives and how it is trained: `python training/recipes.py NAME[.TAG]` prints the command.

ltzoo names a recipe by id (`resnet32_ce_cifar10_lt.if100`; a later stage adds its name, as in
`resnet32_dscl_cifar10_lt.if100.probe`) and knows nothing of this repository's folders; this module is the one place
that maps an id to its config file and to the command that trains it. The export writes that command into each
release's config.json and model card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo import registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "training" / "configs"
LAUNCH = "accelerate launch -q training/train.py --config"


def config_file(recipe_id: str) -> str:
    """The config of a recipe id, relative to the repository: `training/configs/<id>.yaml`."""
    return f"{CONFIG_DIR.relative_to(ROOT)}/{recipe_id}.yaml"


def stage_configs(model_name: str) -> list[str]:
    """The config of each training stage of a zoo name (default tag if none), in order."""
    entry, tag = registry.resolve(model_name)
    return [config_file(recipe_id) for recipe_id in entry.recipe_ids(tag)]


def release_config(model_name: str) -> str:
    """The config whose export is the released model (the last stage's)."""
    return stage_configs(model_name)[-1]


def train_command(model_name: str) -> str:
    """The shell command that rebuilds a zoo name's weights: every stage, in order."""
    return " && ".join(f"{LAUNCH} {config}" for config in stage_configs(model_name))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a zoo name with or without its tag, e.g. resnet32_dscl_cifar10_lt.if100")
    args = parser.parse_args(argv)
    try:
        print(train_command(args.name))
    except registry.UnknownModelError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
