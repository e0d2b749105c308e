"""``ltzoo report``: a static HTML leaderboard of every release in a folder (no server, no JavaScript framework).

``index.html`` holds one table of every release (top-1 beside the paper's, many/medium/few, ECE, top-1 on each
shifted test distribution, the validate command), sortable by a click on a column header (a few lines of plain
JavaScript), and each benchmark's comparison plots; ``models/<name>.html`` holds a model's plots (per-class with
the reliability diagram, shifted test distributions) and its model card. Predictions come from the cache
(``ltzoo.evaluation.cache``), so a second report costs no model run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from ltzoo import registry
from ltzoo.benchmarks import BENCHMARKS
from ltzoo.data.shots import SHOT_GROUPS, SHOT_RULE
from ltzoo.evaluate import plot_per_class
from ltzoo.evaluation.compare import ComparedModel, compare, plot_per_class_comparison
from ltzoo.evaluation.test_distributions import TEST_DISTRIBUTIONS, plot_test_dists
from ltzoo.hub import WEIGHTS_NAME

__all__ = ["release_names", "write_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1d2433; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
p.lead { color: #4a5468; max-width: 70rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d5dae3; padding: 0.3rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #eef1f6; position: sticky; top: 0; }
#leaderboard th { cursor: pointer; user-select: none; }
#leaderboard th[aria-sort="ascending"]::after { content: " \\25B2"; }
#leaderboard th[aria-sort="descending"]::after { content: " \\25BC"; }
td.text, th.text { text-align: left; } td.paper { color: #6b7487; } tr:nth-child(even) td { background: #f8f9fb; }
td.wrap { white-space: normal; min-width: 12rem; } .scroll { overflow-x: auto; }
code { font-size: 0.78rem; background: #f3f4f7; padding: 0.1rem 0.25rem; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #e3e6ec; margin: 0.5rem 0; }
.card { max-width: 60rem; border-top: 2px solid #d5dae3; margin-top: 2rem; }
.card table td, .card table th { text-align: left; white-space: normal; }
.card pre { background: #f3f4f7; padding: 0.6rem; overflow-x: auto; }
"""

_SORT_SCRIPT = """
document.querySelectorAll("#leaderboard th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.cells[column], value = cell.getAttribute("data-value");
      return value === null ? cell.textContent.trim().toLowerCase() : parseFloat(value);
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x === "number" && isNaN(x)) return 1;
      if (typeof y === "number" && isNaN(y)) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    }).forEach(function (row) { body.appendChild(row); });
  });
});
// index.html#sort=<column header> opens the table sorted by that column, #sort=-<column header> descending
if (location.hash.indexOf("#sort=") === 0) {
  var wanted = decodeURIComponent(location.hash.slice(6)), descending = wanted.charAt(0) === "-";
  wanted = descending ? wanted.slice(1) : wanted;
  document.querySelectorAll("#leaderboard th").forEach(function (th) {
    if (th.textContent === wanted) { th.click(); if (descending) th.click(); }
  });
}
"""


def release_names(releases_dir: str | Path) -> list[str]:
    """The ``name.tag`` of every release folder (one holding model.safetensors) under ``releases_dir``, sorted."""
    return sorted(path.parent.name for path in Path(releases_dir).glob(f"*/{WEIGHTS_NAME}"))


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
            f"</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n"
            + (f"<script>{script}</script>\n" if script else "") + "</body>\n</html>\n")


def _number(value: float | None, css: str = "") -> str:
    """A numeric cell whose data-value sorts (n/a sorts last)."""
    shown = "n/a" if value is None else f"{value:.2f}"
    data = "NaN" if value is None else repr(float(value))
    return f'<td data-value="{data}"{f" class={css!r}" if css else ""}>{shown}</td>'


def _card_html(readme: Path) -> str:
    """A release's model card (README.md without its YAML front matter) as HTML."""
    from markdown_it import MarkdownIt

    text = readme.read_text() if readme.is_file() else f"*{readme} is missing.*"
    if text.startswith("---\n"):
        text = text.split("\n---\n", 1)[1] if "\n---\n" in text else text
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _benchmark(model: ComparedModel) -> str:
    entry, tag = registry.resolve(model.name)
    return f"{BENCHMARKS[entry.dataset].title} ({tag})"


def _row(model: ComparedModel) -> str:
    entry, _ = registry.resolve(model.name)
    result, shifted = model.result, model.result.test_dists or {}
    paper = registry.PAPER_TOP1.get(model.name)
    paper_cell = (f'<td class="paper" data-value="{float(paper[0])!r}" title="{html.escape(paper[1])}">'
                  f"{paper[0]} <small>({html.escape(paper[1])})</small></td>" if paper
                  else '<td class="paper" data-value="NaN">–</td>')
    cells = [
        f'<td class="text"><a href="models/{html.escape(model.name)}.html">{html.escape(model.name)}</a></td>',
        f'<td class="text wrap">{html.escape(registry.METHODS[entry.method].title)}</td>',
        f'<td class="text">{html.escape(_benchmark(model))}</td>',
        _number(result.top1), paper_cell, *(_number(getattr(result, group)) for group in SHOT_GROUPS),
        _number(result.ece), *(_number(shifted.get(name), "shift") for name in TEST_DISTRIBUTIONS),
        f'<td class="text wrap"><code>{html.escape(model.command)}</code></td>',
    ]
    return f'<tr data-model="{html.escape(model.name)}">' + "".join(cells) + "</tr>"


def _index(models: Sequence[ComparedModel], plots: dict[str, list[str]], command: str) -> str:
    header = ["model", "method", "benchmark", "top-1", "paper's top-1", *SHOT_GROUPS, "ECE", *TEST_DISTRIBUTIONS,
              "measured with"]
    text_columns = {"model", "method", "benchmark", "measured with"}
    head = "".join(f'<th{" class=text" if h in text_columns else ""} scope="col">{html.escape(h)}</th>'
                   for h in header)
    rows = "\n".join(_row(model) for model in models)
    figures = "".join(
        f"<h2>{html.escape(benchmark)}</h2>" + "".join(f'<img src="{src}" alt="{html.escape(src)}">' for src in srcs)
        for benchmark, srcs in plots.items())
    body = f"""<h1>ltzoo leaderboard</h1>
<p class="lead">Every release, measured by ltzoo on its benchmark's balanced test set (top-1, %), beside the number its
paper reports. Many / medium / few: {html.escape(SHOT_RULE)} ECE: 15 equal-width confidence bins. forwardN / backwardN:
top-1 on the test-agnostic shifted test sets of Zhang et al. (NeurIPS 2022) with imbalance factor N, forward
favouring the training head, backward the tail (docs/evaluation.md). Click a column header to sort (or open
<code>index.html#sort=-top-1</code>: by top-1, descending).
Generated by <code>{html.escape(command)}</code>.</p>
<div class="scroll"><table id="leaderboard">
<thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
{figures}"""
    return _page("ltzoo leaderboard", body, _SORT_SCRIPT)


def _model_page(model: ComparedModel, release: Path) -> str:
    result, shifted = model.result, model.result.test_dists or {}
    paper = registry.PAPER_TOP1.get(model.name)
    metrics = [("top-1", result.top1), ("top-5", result.top5), *((g, getattr(result, g)) for g in SHOT_GROUPS),
               ("ECE", result.ece)]
    metric_rows = "".join(f"<tr><th class=text>{k}</th>{_number(v)}</tr>" for k, v in metrics)
    if paper:
        metric_rows += f"<tr><th class=text>paper's top-1</th><td>{paper[0]} ({html.escape(paper[1])})</td></tr>"
    shift_head = "".join(f"<th>{name}</th>" for name in shifted)
    shift_row = "".join(_number(value) for value in shifted.values())
    body = f"""<p><a href="../index.html">&larr; leaderboard</a></p>
<h1>{html.escape(model.name)}</h1>
<p>Measured with <code>{html.escape(model.command)}</code><br>
weights sha256 <code>{html.escape(model.weights_sha256 or "n/a")}</code></p>
<table class="metrics">{metric_rows}</table>
<h2>Shifted test distributions (top-1, %)</h2>
<table class="shifted"><thead><tr>{shift_head}</tr></thead><tbody><tr>{shift_row}</tr></tbody></table>
<img src="{html.escape(model.name)}/per_class.png" alt="per-class accuracy and reliability diagram">
<img src="{html.escape(model.name)}/test_dists.png" alt="top-1 on shifted test distributions">
<div class="card">
{_card_html(release / "README.md")}
</div>"""
    return _page(model.name, body)


def write_report(
    releases_dir: str | Path,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = True,
    cache: bool = True,
) -> Path:
    """Evaluate (or read from the cache) every release under ``releases_dir`` and write the site to ``out_dir``.

    Returns the path of ``index.html``. Releases of different benchmarks share the table; plots are per benchmark.
    """
    releases_dir, out_dir = Path(releases_dir), Path(out_dir)
    names = release_names(releases_dir)
    if not names:
        raise FileNotFoundError(f"no release folder with {WEIGHTS_NAME} under {releases_dir}")
    if out_dir.resolve() == releases_dir.resolve() or releases_dir.resolve() in out_dir.resolve().parents:
        raise ValueError(f"write the report outside the releases folder {releases_dir}, not into {out_dir}")
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        entry, tag = registry.resolve(name)
        groups.setdefault((entry.dataset, tag.split("_")[0]), []).append(name)
    models: list[ComparedModel] = []
    plots: dict[str, list[str]] = {}
    for (dataset, imb), group in groups.items():
        compared = compare(group, releases_dir=releases_dir, data_dir=data_dir, batch_size=batch_size,
                           progress=progress, cache=cache)
        models += compared
        stem = f"{dataset}.{imb}"
        plot_test_dists({m.name: m.result.test_dists for m in compared}, out_dir / "assets" / f"{stem}.test_dists.png",
                        title=f"{_benchmark(compared[0])}: top-1 on shifted test distributions")
        plot_per_class_comparison(compared, out_dir / "assets" / f"{stem}.per_class.png",
                                  title=f"{_benchmark(compared[0])}: per-class test accuracy (legend: top-1)")
        plots[_benchmark(compared[0])] = [f"assets/{stem}.test_dists.png", f"assets/{stem}.per_class.png"]
    for model in models:
        folder = out_dir / "models" / model.name
        plot_per_class(model.result, model.train_counts, folder / "per_class.png", title=model.name,
                       class_names=model.class_names)
        plot_test_dists({model.name: model.result.test_dists}, folder / "test_dists.png")
        (out_dir / "models" / f"{model.name}.html").write_text(_model_page(model, releases_dir / model.name))
    index = out_dir / "index.html"
    index.write_text(_index(models, plots, f"ltzoo report {releases_dir} -o {out_dir}"))
    (out_dir / "leaderboard.json").write_text(json.dumps(
        [{"name": m.name, "command": m.command, "weights_sha256": m.weights_sha256,
          **m.result.to_dict(include_confusion=False)} for m in models], indent=2) + "\n")
    return index
