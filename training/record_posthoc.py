"""Record a release's post-hoc adjustment in its folder: the τ sweep on held-out training images (never the test set)
and the test metrics at the chosen τ go into config.json (`ltzoo.posthoc`), which the model card shows beside the
plain result. Run: python training/record_posthoc.py resnet32_ce_cifar10_lt.if100 [--kind logit_adjust]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo.evaluation.posthoc import POSTHOC_KINDS  # noqa: E402
from ltzoo.evaluation.sweep import sweep  # noqa: E402
from ltzoo.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from training.export import portable  # noqa: E402
from training.model_card import render_model_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("top1", "many", "medium", "few", "ece")


def record(folder: Path, kind: str, data_dir: str | None = None) -> dict:
    """Sweep τ for `kind` on the release in `folder`, store the outcome in its config.json and re-render its card."""
    name = folder.name
    weights = folder / WEIGHTS_NAME
    shown = weights.relative_to(ROOT) if weights.resolve().is_relative_to(ROOT) else weights
    result = sweep(name, kind, checkpoint=weights, data_dir=data_dir)
    entry = {"kind": kind, "tau": result.best_tau, "heldout": result.heldout_source,
             "metrics": {k: result.adjusted.to_dict(include_confusion=False)[k] for k in KEYS},
             "command": f"ltzoo validate {name} --checkpoint {shown} --sweep {kind}"}
    config = json.loads((folder / CONFIG_NAME).read_text())
    entry = portable(entry)  # the held-out split's description names the data archive, not this machine's path
    config["ltzoo"]["posthoc"] = [p for p in config["ltzoo"].get("posthoc", []) if p["kind"] != kind] + [entry]
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    (folder / CARD_NAME).write_text(render_model_card(config))
    print(result.format_report())
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="name.tag of a folder of releases/")
    p.add_argument("--kind", choices=POSTHOC_KINDS, default="logit_adjust")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    folder = ROOT / "releases" / args.name
    if not (folder / CONFIG_NAME).is_file():
        raise SystemExit(f"error: no release folder releases/{args.name}")
    record(folder, args.kind, args.data_dir)


if __name__ == "__main__":
    main()
