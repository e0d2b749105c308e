"""Copy what the exports measured into the registry and the README: releases/*/config.json -> ltzoo/releases.json
and the README results table. Numbers are copied, never typed. Run: python training/sync_releases.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo import registry  # noqa: E402
from ltzoo.hub import CONFIG_NAME, WEIGHTS_NAME, sha256_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE_BEGIN, TABLE_END = "<!-- results:begin -->", "<!-- results:end -->"

# Numbers the papers report (top-1 %, CIFAR-10-LT IF 100, ResNet-32): labelled as the paper's, never as ours.
PAPER_TOP1 = {
    "resnet32_ce_cifar10_lt.if100": ("70.36", "LDAM-DRW paper, Table 2"),
    "resnet32_ldam_drw_cifar10_lt.if100": ("77.03", "LDAM-DRW paper, Table 2"),
    "resnet32_bcl_cifar10_lt.if100": ("84.32", "BCL, secondary quote"),
    "resnet32_concutmix_cifar10_lt.if100": ("86.07", "ConCutMix README"),
}


def collect(releases_dir: Path) -> dict[str, dict]:
    table = {}
    for config_file in sorted(releases_dir.glob(f"*/{CONFIG_NAME}")):
        meta = json.loads(config_file.read_text())["ltzoo"]
        full = f"{meta['name']}.{meta['tag']}"
        if not meta.get("metrics"):
            raise SystemExit(f"{config_file} has no measured metrics; run the export (training/export.py) first")
        sha = sha256_file(config_file.with_name(WEIGHTS_NAME))
        if sha != meta["files"][WEIGHTS_NAME]:
            raise SystemExit(f"{config_file.parent}: model.safetensors does not match the sha256 in its config.json")
        metrics = {k: meta["metrics"][k] for k in ("top1", "top5", "many", "medium", "few", "ece")}
        table[full] = {"sha256": sha, "metrics": metrics, "validate_command": meta["validate_command"]}
    return table


def results_table(table: dict[str, dict]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    rows = ["| model | top-1 | many | medium | few | paper's top-1 (source) | measured with |",
            "|---|---|---|---|---|---|---|"]
    for full, rec in table.items():
        m = rec["metrics"]
        paper = PAPER_TOP1.get(full)
        rows.append(f"| `{full}` | {fmt(m['top1'])} | {fmt(m['many'])} | {fmt(m['medium'])} | {fmt(m['few'])} | "
                    f"{f'{paper[0]} ({paper[1]})' if paper else '–'} | `{rec['validate_command']}` |")
    return "\n".join(rows)


def main() -> None:
    table = collect(ROOT / "releases")
    registry.RELEASES_FILE.write_text(json.dumps(table, indent=2) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    if TABLE_BEGIN in text:
        head, rest = text.split(TABLE_BEGIN, 1)
        tail = rest.split(TABLE_END, 1)[1]
        readme.write_text(f"{head}{TABLE_BEGIN}\n{results_table(table)}\n{TABLE_END}{tail}")
    print(f"{len(table)} release(s) recorded in {registry.RELEASES_FILE.relative_to(ROOT)} and README.md")


if __name__ == "__main__":
    main()
