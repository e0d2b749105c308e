"""Copy what the exports measured into the registry and the README: releases/*/config.json -> ltzoo/releases.json
and the README results table; ablation runs (results/ablations/<variant>/<name>.<tag>/, exported by train.py with
`release_dir=results/ablations/<variant>`) go into their release's config.json, model card and README rows.
Numbers are copied, never typed. Run: python training/sync_releases.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltzoo import registry  # noqa: E402
from ltzoo.benchmarks import BENCHMARKS  # noqa: E402
from ltzoo.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, sha256_file  # noqa: E402
from ltzoo.methods import method_defaults  # noqa: E402
from training.config import DataConfig, OptimConfig, TrainConfig  # noqa: E402
from training.export import local_weights, portable  # noqa: E402
from training.model_card import pct, render_model_card  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE_BEGIN, TABLE_END = "<!-- results:begin -->", "<!-- results:end -->"
ABLATIONS = ROOT / "results" / "ablations"
METRIC_KEYS = ("top1", "top5", "many", "medium", "few", "ece")
BOOKKEEPING = {"run_dir", "release_dir", "eval_every", "keep_checkpoints", "compile", "data.root", "data.num_workers"}

SEEDS = ROOT / "results" / "seeds"
PRECISIONS = ("bf16", "fp32")  # as training/train.py's precision_name writes them into a run's hardware


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _config_defaults(method: str) -> dict[str, object]:
    """The training config's and its method's defaults, flat: a key that one of two configs predates compares as its
    default (JSON values, so a tuple default equals the list a config holds)."""
    defaults = {prefix + f.name: f.default
                for prefix, cls in (("", TrainConfig), ("data.", DataConfig), ("optim.", OptimConfig))
                for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    defaults.update({f"method.{k}": v for k, v in method_defaults(method).items()})
    return json.loads(json.dumps(defaults))


def config_changes(base: dict, variant: dict) -> str:
    """What an ablation changed in the training config, as `key=value` (bookkeeping keys left out)."""
    defaults = _config_defaults(base["method"]["name"])
    a, b = {**defaults, **_flat(base)}, {**defaults, **_flat(variant)}
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in BOOKKEEPING)
    return " ".join(f"{k}={json.dumps(b.get(k))}" for k in changed) or "(none)"


def run_precision(meta: dict) -> str:
    """The precision a run trained in: each history segment's where its hardware string names it (runs since the
    precision was recorded there), else the exporting process's; "bf16+fp32" for a run resumed across both."""
    named = [part for segment in meta.get("history") or [] for part in (segment.get("hardware") or "").split(", ")
             if part in PRECISIONS]
    return "+".join(sorted(set(named))) if named else meta["precision"]


def ablations_of(full: str, release_config: dict, ablations_dir: Path) -> list[dict]:
    """The exported ablation runs of one release: variant name, config change, metrics and both commands."""
    found = []
    for config_file in sorted(ablations_dir.glob(f"*/{full}/{CONFIG_NAME}")):
        meta = json.loads(config_file.read_text())["ltzoo"]
        if not meta.get("metrics"):
            raise SystemExit(f"{config_file} has no measured metrics; run the export (training/export.py) first")
        found.append({"variant": config_file.parent.parent.name,
                      "changes": config_changes(release_config, meta["config"]),
                      "metrics": {k: meta["metrics"][k] for k in METRIC_KEYS}, "precision": run_precision(meta),
                      "validate_command": meta["validate_command"], "train_command": meta["train_command"]})
    return found


def collect(releases_dir: Path, ablations_dir: Path = ABLATIONS) -> dict[str, dict]:
    table = {}
    for config_file in sorted(releases_dir.glob(f"*/{CONFIG_NAME}")):
        meta = json.loads(config_file.read_text())["ltzoo"]
        full = f"{meta['name']}.{meta['tag']}"
        if not meta.get("metrics"):
            raise SystemExit(f"{config_file} has no measured metrics; run the export (training/export.py) first")
        sha = sha256_file(config_file.with_name(WEIGHTS_NAME))
        if sha != meta["files"][WEIGHTS_NAME]:
            raise SystemExit(f"{config_file.parent}: model.safetensors does not match the sha256 in its config.json")
        metrics = {k: meta["metrics"][k] for k in METRIC_KEYS}
        table[full] = {"sha256": sha, "metrics": metrics, "validate_command": meta["validate_command"],
                       "seed": meta["config"].get("seed", 0), "precision": run_precision(meta),
                       "ablations": ablations_of(full, meta["config"], ablations_dir)}
    return table


def update_release_folders(releases_dir: Path, table: dict[str, dict]) -> None:
    """Write each release's ablations into its config.json, without machine paths (see export.portable), and
    re-render its model card from it (cards follow the current template; every number in them comes from
    config.json)."""
    for full, record in table.items():
        config_file = releases_dir / full / CONFIG_NAME
        stored = json.loads(config_file.read_text())
        config = json.loads(config_file.read_text())
        if config["ltzoo"].get("ablations", []) != record["ablations"]:
            config["ltzoo"]["ablations"] = record["ablations"]
        config = portable(config)
        if config != stored:
            config_file.write_text(json.dumps(config, indent=2) + "\n")
        (releases_dir / full / CARD_NAME).write_text(render_model_card(config))


def update_ablation_cards(ablations_dir: Path) -> None:
    """Re-render each ablation folder's model card (current template; its usage loads the folder's own file). A
    former release moved here keeps no ablation table: the ablations belong to the release."""
    for config_file in sorted(ablations_dir.glob(f"*/*/{CONFIG_NAME}")):
        stored = json.loads(config_file.read_text())
        config = portable(stored)
        config["ltzoo"].pop("ablations", None)
        if config != stored:
            config_file.write_text(json.dumps(config, indent=2) + "\n")
        config_file.with_name(CARD_NAME).write_text(render_model_card(config, local_weights(config_file.parent)))


def collect_seeds(seeds_dir: Path = SEEDS) -> dict[str, list[dict]]:
    """Other seeds of a release (results/seeds/seed<k>/<name>.<tag>/, exported with `release_dir=`): per release,
    each seed's number, metrics, validate command and precision, seed order."""
    found: dict[str, list[dict]] = {}
    for config_file in sorted(seeds_dir.glob(f"seed*/*/{CONFIG_NAME}")):
        meta = json.loads(config_file.read_text())["ltzoo"]
        if not meta.get("metrics"):
            raise SystemExit(f"{config_file} has no measured metrics; run the export (training/export.py) first")
        found.setdefault(config_file.parent.name, []).append(
            {"seed": meta["config"]["seed"], "metrics": {k: meta["metrics"][k] for k in METRIC_KEYS},
             "validate_command": meta["validate_command"], "precision": run_precision(meta)})
    return found


def _spread(values: list[float | None]) -> str:
    """mean ± sample std of measured values (n/a when a group is empty)."""
    if any(v is None for v in values):
        return "n/a"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.2f} ± {std:.2f}"


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def _delta(value: float, other: dict | None) -> str:
    return "–" if other is None else f"{value - other['metrics']['top1']:+.2f}"


def _precisions(runs: list[dict]) -> str:
    """'' when every seed trained at one precision; else which seeds ran at which ('seed 0 bf16, seeds 1, 2 fp32')."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(run["precision"], []).append(str(run["seed"]))
    if len(groups) == 1:
        return ""
    return ", ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)} {precision}"
                     for precision, seeds in groups.items())


def _block(dataset: str, tag: str, rows: dict[str, dict], seeds: dict[str, list[dict]]) -> list[str]:
    """One benchmark and imbalance factor: each release against CE and against the method it builds on, its
    ablations and its other seeds, then what the seed spread says about the differences."""
    by_method = {registry.resolve(full)[0].method: rec for full, rec in rows.items()}
    factor = BENCHMARKS[dataset].imb_factors.get(tag)
    title = BENCHMARKS[dataset].title + (f", IF {factor:g}" if factor else f" ({tag})")
    out = [f"**{title}**", "", "| model | top-1 | many | medium | few | ECE | precision | vs CE | vs its base "
           "| paper's top-1 (source) | measured with |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    below_base, stds, mixed = [], {}, []
    for full, rec in rows.items():
        method = registry.resolve(full)[0].method
        base = registry.METHODS[method].base
        m = rec["metrics"]
        paper = registry.PAPER_TOP1.get(full)
        versus_base = ("–" if base in (None, "ce") or base not in by_method
                       else f"{_delta(m['top1'], by_method[base])} ({base})")
        if base in by_method and m["top1"] <= by_method[base]["metrics"]["top1"]:
            below_base.append(f"`{method}` {_delta(m['top1'], by_method[base])} against `{base}`")
        out.append(f"| `{full}` | {pct(m['top1'])} | {pct(m['many'])} | {pct(m['medium'])} | {pct(m['few'])} | "
                   f"{pct(m['ece'])} | {rec['precision']} | "
                   f"{_delta(m['top1'], by_method.get('ce')) if method != 'ce' else '–'} | "
                   f"{versus_base} | {f'{paper[0]} ({paper[1]})' if paper else '–'} | `{rec['validate_command']}` |")
        for ablation in rec["ablations"]:
            a = ablation["metrics"]
            out.append(f"| ↳ ablation `{ablation['variant']}`: {ablation['changes']} | {pct(a['top1'])} | "
                       f"{pct(a['many'])} | {pct(a['medium'])} | {pct(a['few'])} | {pct(a['ece'])} | "
                       f"{ablation['precision']} | – | – | – | "
                       f"`{ablation['validate_command']}` |")
        others = seeds.get(full, [])
        if others:
            runs = [{"seed": rec["seed"], "metrics": m, "precision": rec["precision"]}, *others]
            cells = [_spread([r["metrics"][k] for r in runs]) for k in METRIC_KEYS if k != "top5"]
            stds[method] = (_std([r["metrics"]["top1"] for r in runs]), len(runs))
            precisions = _precisions(runs)
            if precisions:
                mixed.append(f"`{method}` ({precisions})")
            commands = "<br>".join(f"`{o['validate_command']}`" for o in others)
            out.append(f"| ↳ seeds {', '.join(str(r['seed']) for r in runs)} (mean ± std) | {' | '.join(cells)} | "
                       f"{precisions or rec['precision']} | – | – | – | `{rec['validate_command']}`<br>{commands} |")
    notes = []
    if stds:
        limit = 2 * max(std for std, _ in stds.values())
        spread = ", ".join(f"`{k}` {std:.2f} ({n} seeds)" for k, (std, n) in stds.items())
        methods = list(by_method)
        close = [f"`{a}` / `{b}` ({abs(by_method[a]['metrics']['top1'] - by_method[b]['metrics']['top1']):.2f})"
                 for i, a in enumerate(methods) for b in methods[i + 1:]
                 if abs(by_method[a]["metrics"]["top1"] - by_method[b]["metrics"]["top1"]) < limit]
        notes.append(f"Seed spread (sample std of top-1): {spread}. "
                      f"Differences in top-1 under twice the larger ({limit:.2f}) are within the seed spread: "
                     + (", ".join(close) if close else "none") + ".")
        if mixed:
            notes.append("Seeds trained at different precisions (the machine decides: bf16 only where the CPU has it "
                         "natively), so these spreads include the precision's effect as well as the seed's: "
                         + "; ".join(mixed) + ".")
    by_precision: dict[str, list[str]] = {}
    for method, rec in by_method.items():
        by_precision.setdefault(rec["precision"], []).append(f"`{method}`")
    if len(by_precision) > 1:
        notes.append("Releases here trained at different precisions (the machine decides: bf16 only where the CPU "
                     "has it natively), so a difference between them includes the precision's effect: "
                     + "; ".join(f"{p}: {', '.join(ms)}" for p, ms in by_precision.items()) + ".")
    if below_base:
        notes.append("Not above the method it builds on: " + "; ".join(below_base) + ".")
    return out + ([""] + notes if notes else [])


def results_table(table: dict[str, dict], seeds: dict[str, list[dict]] | None = None) -> str:
    """The README's results: one block per benchmark and imbalance factor (IF 100 first), methods in the registry's
    order, every number copied from a release folder with the command that measured it."""
    methods, datasets = list(registry.METHODS), list(BENCHMARKS)
    blocks: dict[tuple[str, str], dict[str, dict]] = {}
    for full in sorted(table, key=lambda f: methods.index(registry.resolve(f)[0].method)):
        entry, tag = registry.resolve(full)
        blocks.setdefault((entry.dataset, tag), {})[full] = table[full]
    order = sorted(blocks, key=lambda k: (datasets.index(k[0]),
                                          -(BENCHMARKS[k[0]].imb_factors or {}).get(k[1], 0), k[1]))
    return "\n\n".join("\n".join(_block(*key, blocks[key], seeds or {})) for key in order)


def main() -> None:
    table = collect(ROOT / "releases")
    update_release_folders(ROOT / "releases", table)
    update_ablation_cards(ABLATIONS)
    registry.RELEASES_FILE.write_text(json.dumps(
        {full: {k: v for k, v in rec.items() if k not in ("ablations", "seed", "precision")}
         for full, rec in table.items()},
        indent=2) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    if TABLE_BEGIN in text:
        head, rest = text.split(TABLE_BEGIN, 1)
        tail = rest.split(TABLE_END, 1)[1]
        readme.write_text(f"{head}{TABLE_BEGIN}\n{results_table(table, collect_seeds())}\n{TABLE_END}{tail}")
    print(f"{len(table)} release(s) recorded in {registry.RELEASES_FILE.relative_to(ROOT)} and README.md")


if __name__ == "__main__":
    main()
