"""Hugging Face model cards for releases, rendered from a release's config.json (so every number is measured)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ltzoo import registry
from ltzoo.benchmarks import BENCHMARKS
from training.provenance import describe_history

JPEG_NOTE = (
    "**Data note.** The CIFAR-10 copy this model was trained and evaluated on is a JPEG (quality 75) re-encoding of "
    "CIFAR-10, so accuracy on the original PNG-exact CIFAR-10 may differ."
)
RESULTS = Path(__file__).resolve().parents[1] / "results"
JPEG_PIXEL_ERROR = RESULTS / "jpeg_pixel_error.json"
JPEG_EFFECT = RESULTS / "jpeg_effect.json"


def _jpeg_note() -> str:
    """The data note, with what `benchmarks/jpeg_pixel_error.py --json` and `benchmarks/jpeg_effect.py --json` have
    recorded: the pixel error against the originals, and the cost in accuracy with its standard error and per-seed
    spread (the error says how much of the mean is seed noise)."""
    note = JPEG_NOTE
    if JPEG_PIXEL_ERROR.is_file():
        error = json.loads(JPEG_PIXEL_ERROR.read_text())
        note += (f" Measured on the {error['images']:,} training images that also exist bit-exact: mean absolute pixel "
                 f"error {error['mean_abs_error']:.2f}/255 against the originals (`{error['command']}`).")
    if JPEG_EFFECT.is_file():
        effect = json.loads(JPEG_EFFECT.read_text())
        costs = [lossless - jpeg for lossless, jpeg in zip(effect["top1"]["lossless"], effect["top1"]["jpeg_q75"])]
        stderr = statistics.stdev(costs) / math.sqrt(len(costs)) if len(costs) > 1 else float("nan")
        note += (f" Trained on the JPEG copies of {effect['train_images']:,} images instead of their originals, "
                 f"a ResNet-32 lost {effect['jpeg_cost_points']:.2f} ± {stderr:.2f} points of held-out top-1 "
                 f"(mean ± standard error of {len(costs)} seeds, per seed {min(costs):+.2f} to {max(costs):+.2f}; "
                 f"`{effect['command']}`).")
    return note


def pct(value: float | None) -> str:
    """A percentage as the cards, the README table and the training log print it: two decimals, or n/a."""
    return "n/a" if value is None else f"{value:.2f}"


# The Hub datasets a benchmark is drawn from (its long-tailed subset is built by ltzoo's data code).
# metric key -> (metric type, name shown on the Hub)
EVAL_METRICS = {
    "top1": ("accuracy", "top-1"),
    "top5": ("top_5_accuracy", "top-5"),
    "many": ("accuracy", "many-shot top-1"),
    "medium": ("accuracy", "medium-shot top-1"),
    "few": ("accuracy", "few-shot top-1"),
    "ece": ("ece", "ECE (%)"),
}


def card_data(config: dict[str, Any]) -> ModelCardData:
    """The card's metadata with huggingface_hub's own types: the library, datasets, and one `EvalResult` per
    measured metric on the test split (the Hub renders them as the model-index)."""
    meta = config["ltzoo"]
    dataset = BENCHMARKS[meta["dataset"]]
    metrics = meta.get("metrics") or {}
    results = [
        EvalResult(
            task_type="image-classification", task_name="Long-tailed image classification",
            dataset_type=meta["dataset"], dataset_name=dataset.title, dataset_split="test",
            metric_type=kind, metric_name=name, metric_value=round(metrics[key], 2),
        )
        for key, (kind, name) in EVAL_METRICS.items() if metrics.get(key) is not None
    ]
    return ModelCardData(
        model_name=f"{meta['name']}.{meta['tag']}", library_name="timm", license="apache-2.0",
        pipeline_tag="image-classification", tags=["image-classification", "timm", "ltzoo", "long-tailed-recognition"],
        datasets=[BENCHMARKS[meta["dataset"]].hf_dataset or meta["dataset"]], eval_results=results or None,
    )


def _selection(meta: dict[str, Any]) -> str:
    selection = meta.get("selection") or {"on": "last"}
    if selection["on"] == "val":
        return (f"epoch {selection['epoch']} of {meta['config']['epochs']}, the best top-1 on the val split "
                f"({selection['val_top1']:.2f}); the test split was not used to choose it")
    return f"the last epoch ({meta['config']['epochs']})"


def _ablations(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The ablation table: this release, then each variant trained with its recipe changed."""
    rows = ["## Ablations (measured by ltzoo)", "",
            "The same recipe with the changes shown, trained and measured like this release (test split):", "",
            "| run | change | top-1 | many | medium | few |", "|---|---|---|---|---|---|",
            f"| this release | – | {pct(metrics.get('top1'))} | {pct(metrics.get('many'))} | "
            f"{pct(metrics.get('medium'))} | {pct(metrics.get('few'))} |"]
    for ablation in meta["ablations"]:
        a = ablation["metrics"]
        rows.append(f"| `{ablation['variant']}` | `{ablation['changes']}` | {pct(a.get('top1'))} | "
                    f"{pct(a.get('many'))} | {pct(a.get('medium'))} | {pct(a.get('few'))} |")
    rows += ["", "Trained and measured with:", "", "```bash"]
    for ablation in meta["ablations"]:
        rows += [ablation["train_command"], ablation["validate_command"]]
    return rows + ["```", ""]


def _posthoc(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The release with and without a post-hoc adjustment at inference, τ chosen on held-out training images."""
    rows = ["## Post-hoc adjustment (at inference, no retraining)", "",
            "| test | τ | top-1 | many | medium | few | ECE |", "|---|---|---|---|---|---|---|",
            f"| plain | – | {pct(metrics.get('top1'))} | {pct(metrics.get('many'))} | {pct(metrics.get('medium'))} | "
            f"{pct(metrics.get('few'))} | {pct(metrics.get('ece'))} |"]
    for p in meta["posthoc"]:
        m = p["metrics"]
        rows.append(f"| {p['kind'].replace('_', ' ')} | {p['tau']:g} | {pct(m['top1'])} | {pct(m['many'])} | "
                    f"{pct(m['medium'])} | {pct(m['few'])} | {pct(m['ece'])} |")
    rows += ["", "τ is the best on a held-out split of training images, never on the test set "
             f"({meta['posthoc'][0]['heldout']}). Measured with:", "", "```bash",
             *(p["command"] for p in meta["posthoc"]), "```", ""]
    return rows


def _usage(full: str, local_weights: str | None) -> list[str]:
    """How to load these weights: from the Hub for a release, from its file for a run that is not published."""
    if local_weights is not None:
        return ["These weights are not published on the Hub (the published entry loads the release); load the file "
                "(a bare file name is this folder's):",
                "", "```python", "import ltzoo",
                f"model = ltzoo.create_model(\"{full}\", checkpoint_path=\"{local_weights}\").eval()", "```", ""]
    return ["```python", "import ltzoo", f"model = ltzoo.create_model(\"{full}\", pretrained=True).eval()",
            "# or, with plain timm after `import ltzoo` (the release is a timm pretrained tag):",
            f"# timm.create_model(\"{_timm_name(full)}\", pretrained=True)", "```", ""]


def _timm_name(full: str) -> str:
    entry, tag = registry.resolve(full)
    return f"{entry.timm_arch}.{registry.timm_tag(entry, tag)}"


def _training_time(meta: dict[str, Any]) -> str:
    """This run's hours, and the total with the stage it started from (a probe's stage 1) when one is recorded."""
    hours = meta["train_seconds"] / 3600
    if "earlier_stage" not in meta:
        return f"{hours:.2f} h"
    total = hours + meta["earlier_stage"]["train_seconds"] / 3600
    return f"{hours:.2f} h ({total:.2f} h with the stage it starts from)"


def _earlier_stage(stage: dict[str, Any]) -> str:
    """The card's line on the stage this run started from: its recipe, length, time and run history."""
    line = f"- starts from: `{stage['recipe']}` after {stage['epochs']} epochs ({stage['train_seconds'] / 3600:.2f} h)"
    if stage["as_recipe"] is False:
        line += ", trained with a config that differs from that file (overrides or a later edit)"
    if stage.get("history"):
        line += f"; its run: {describe_history(stage['history'], stage['epochs'])}"
    return line


def render_model_card(config: dict[str, Any], local_weights: str | None = None) -> str:
    """The README.md of a release folder (`huggingface_hub.ModelCard`: `card_data` as its front matter, the body
    below); `local_weights` is the weights file of a folder that is not published (an ablation run), which its
    usage snippet then loads."""
    meta = config["ltzoo"]
    full = f"{meta['name']}.{meta['tag']}"
    method = registry.METHODS[meta["method"]]
    dataset = BENCHMARKS[meta["dataset"]]
    metrics = meta.get("metrics") or {}
    groups = metrics.get("group_sizes", {})
    parts = [
        f"# {full}",
        "",
        f"{method.title} ({method.paper}) trained on {dataset.title} ({meta['tag']}) with a "
        f"`{config['architecture']}` backbone and a {config['model_args']['classifier']} classifier, by "
        "[ltzoo](https://github.com/ltzoo/ltzoo).",
        "",
    ]
    if meta.get("recipe_origin") == "ltzoo":
        note = registry.get_entry(meta["name"]).ltzoo_recipe
        parts += [f"**The training recipe is ltzoo's own, not the paper's:** {note}.", ""]
    if local_weights is not None:
        parts += [f"**This run is not the release of `{full}`:** the command and the config under Training say "
                  "how it was trained.", ""]
    parts += [
        "## Results (measured by ltzoo)",
        "",
        "| split | top-1 | top-5 | many | medium | few | ECE |",
        "|---|---|---|---|---|---|---|",
        f"| test | {pct(metrics.get('top1'))} | {pct(metrics.get('top5'))} | {pct(metrics.get('many'))} | "
        f"{pct(metrics.get('medium'))} | {pct(metrics.get('few'))} | {pct(metrics.get('ece'))} |",
        "",
        f"Shot groups by training count (many > 100, medium 20–100, few < 20): "
        f"{groups.get('many', '?')} / {groups.get('medium', '?')} / {groups.get('few', '?')} classes. "
        "Measured with:",
        "",
        "```bash",
        meta.get("validate_command", ""),
        "```",
        "",
    ]
    if meta.get("posthoc"):
        parts += _posthoc(meta, metrics)
    if meta.get("ablations"):
        parts += _ablations(meta, metrics)
    if "JPEG" in meta["data_source"]:
        parts += [_jpeg_note(), ""]
    parts += ["## Usage", "", *_usage(full, local_weights), "## Training",
        "",
        "```bash",
        meta["train_command"],
        "```",
        "",
        f"- recipe: `{meta['recipe']}` (config below); seed {meta['config']['seed']}",
        f"- weights: {_selection(meta)}",
        f"- training time: {_training_time(meta)}, precision {meta['precision']}",
        f"- data: {meta['data_source']}",
        f"- run: {describe_history(meta['history'], meta['config']['epochs'])}" if "history" in meta
        else f"- hardware (the run's last process): {meta['hardware']}",  # releases from before runs recorded history
        *([_earlier_stage(meta["earlier_stage"])] if "earlier_stage" in meta else []),
        "",
        "```json",
        json.dumps(meta["config"], indent=2),
        "```",
        "",
    ]
    if meta.get("heads"):
        parts += ["Training-only heads are in `heads.safetensors` (`ltzoo.create_model(..., with_heads=True)`).", ""]
    return str(ModelCard(f"---\n{card_data(config).to_yaml()}\n---\n\n" + "\n".join(parts)))
