"""Check releases before they are committed: the weights' sha256 is the registry's, and `ltzoo validate` through a
local Hub serving the releases folder reproduces the metrics recorded in each release's config.json and card.

    python training/sync_releases.py && python training/check_release.py resnet32_ce_cifar10_lt.if50 [...]

With no name it checks every folder of releases/. It loads each model the way a user does (`pretrained=True`
through the real huggingface_hub client, a fresh cache), so the Hub path, the registry sha256 and the card's
numbers are checked together; exit status 1 names every mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo import registry  # noqa: E402
from ltzoo.hub import CONFIG_NAME, WEIGHTS_NAME, sha256_file  # noqa: E402
from ltzoo.hub_server import LocalHub, use_endpoint  # noqa: E402
from ltzoo.validate import validate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("top1", "top5", "many", "medium", "few", "ece")


def _hundredths(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def mismatches(full: str, releases_dir: Path, data_dir: str | None) -> list[str]:
    """What differs between the release folder, the registry and a fresh measurement through the Hub (empty: none).
    The Hub must already serve `releases_dir` (use_endpoint)."""
    folder = releases_dir / full
    recorded = json.loads((folder / CONFIG_NAME).read_text())["ltzoo"]
    problems = []
    sha = sha256_file(folder / WEIGHTS_NAME)
    registered = registry.releases().get(full, {}).get("sha256")
    if registered != sha:
        problems.append(f"{full}: weights sha256 {sha[:12]}… but the registry has {registered and registered[:12]}… "
                        "(run python training/sync_releases.py)")
        return problems
    result = validate(full, pretrained=True, data_dir=data_dir, progress=True).to_dict(include_confusion=False)
    for key in CHECKED:
        ours, theirs = _hundredths(result[key]), _hundredths(recorded["metrics"][key])
        if ours != theirs:
            problems.append(f"{full}: {key} measured {ours} through the Hub, recorded {theirs}")
    print(f"{full}: sha256 {sha[:12]}… registered; through the Hub "
          + " ".join(f"{k} {_hundredths(result[k])}" for k in CHECKED)
          + (" = recorded" if not problems else " (differs)"), flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="name.tag of releases to check (default: every release folder)")
    p.add_argument("--releases", default=str(ROOT / "releases"), help="the folder the Hub serves")
    p.add_argument("--data-dir", default=None, help="the benchmark data (default: as `ltzoo validate`)")
    args = p.parse_args(argv)
    releases_dir = Path(args.releases)
    names = args.names or sorted(c.parent.name for c in releases_dir.glob(f"*/{CONFIG_NAME}"))
    missing = [n for n in names if not (releases_dir / n / CONFIG_NAME).is_file()]
    if missing:
        raise SystemExit(f"error: no release folder for {', '.join(missing)} under {releases_dir}")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ltzoo-check-") as cache, LocalHub(releases_dir) as hub:
        use_endpoint(hub.endpoint, cache_dir=cache)
        for name in names:
            problems += mismatches(name, releases_dir, args.data_dir)
    print("\n".join(problems) if problems else f"{len(names)} release(s) reproduce their records")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
