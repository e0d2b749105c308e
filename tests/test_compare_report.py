"""`compare` and `report` on two releases and a small balanced set of real CIFAR-10 test images; the report is
rendered by headless Chromium (the `chromium` Debian package; .ci/run installs it)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from fixtures import make_cifar10_test_subset
from PIL import Image

import ltzoo
import ltzoo.validate
from ltzoo.evaluation.compare import compare, comparison_table, plot_per_class_comparison
from ltzoo.evaluation.report import write_report
from ltzoo_cli import main

NAMES = ["resnet32_ce_cifar10_lt.if100", "resnet32_ldam_drw_cifar10_lt.if100"]
CARD = "---\nlicense: apache-2.0\n---\n\n# {name}\n\nA test release.\n\n| split | top-1 |\n|---|---|\n| test | 1 |\n"


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Two release folders (random-init weights with their sha256 in config.json, a model card) and a CIFAR-10
    root of 20 test images per class."""
    root = tmp_path_factory.mktemp("report")
    data = make_cifar10_test_subset(root / "data", per_class=20)
    for seed, name in enumerate(NAMES):
        torch.manual_seed(seed)
        model = ltzoo.create_model(name)
        base, tag = name.split(".")
        ltzoo.save_pretrained(model, root / "releases" / name, ltzoo_meta={"name": base, "tag": tag})
        (root / "releases" / name / "README.md").write_text(CARD.format(name=name))
    return root / "releases", data


@pytest.fixture(scope="module")
def compared(releases):
    releases_dir, data = releases
    return compare(NAMES, releases_dir=releases_dir, data_dir=data, progress=False)


def test_compare_scores_every_model_on_the_same_images_with_every_shifted_distribution(compared):
    assert [m.name for m in compared] == NAMES
    assert all(m.result.num_images == 200 for m in compared)
    assert all(m.result.test_dists["uniform"] == m.result.top1 and len(m.result.test_dists) == 11 for m in compared)
    assert compared[0].command.startswith("ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint ")


def test_the_comparison_table_has_a_row_per_model_and_a_column_per_metric(compared):
    table = comparison_table(compared, markdown=True, commands=True).splitlines()
    assert table[0].startswith("| model | top-1 | many | medium | few | ECE | forward50 |")
    assert table[0].endswith("| backward50 | measured with |")
    assert len(table) == 2 + len(NAMES) and f"{compared[1].result.top1:.2f}" in table[3]


def test_compare_refuses_models_of_different_benchmarks():
    with pytest.raises(ValueError, match="one benchmark"):
        compare(["resnet32_ce_cifar10_lt.if100", "resnet32_ce_cifar100_lt.if100"], progress=False)


def test_compare_again_reads_the_cached_predictions_instead_of_running_the_models(releases, compared, monkeypatch):
    releases_dir, data = releases
    monkeypatch.setattr(ltzoo.validate, "predict", lambda *args, **kwargs: pytest.fail("a model ran again"))
    again = compare(NAMES, releases_dir=releases_dir, data_dir=data, progress=False)
    assert [m.result.per_class for m in again] == [m.result.per_class for m in compared]


def test_the_report_reads_the_predictions_compare_cached(releases, compared, tmp_path, monkeypatch):
    releases_dir, data = releases
    monkeypatch.setattr(ltzoo.validate, "predict", lambda *args, **kwargs: pytest.fail("a model ran again"))
    index = write_report(releases_dir, tmp_path / "site", data_dir=data, progress=False)
    board = json.loads((index.parent / "leaderboard.json").read_text())
    assert [entry["top1"] for entry in board] == [m.result.top1 for m in compared]


def test_the_per_class_comparison_plot_is_a_png(compared, tmp_path):
    with Image.open(plot_per_class_comparison(compared, tmp_path / "per_class.png")) as image:
        assert image.format == "PNG" and image.width > 500


def test_the_compare_command_prints_the_table(releases, capsys):
    releases_dir, data = releases
    assert main(["compare", *NAMES, "--releases", str(releases_dir), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["model", "top-1", "many"] and NAMES[1] in out


@pytest.fixture(scope="module")
def report(releases, tmp_path_factory):
    releases_dir, data = releases
    return write_report(releases_dir, tmp_path_factory.mktemp("site"), data_dir=data, progress=False)


def test_the_report_writes_an_index_a_page_per_model_and_their_plots(report):
    site = report.parent
    for name in NAMES:
        assert (site / "models" / f"{name}.html").is_file()
        assert (site / "models" / name / "per_class.png").is_file()
    assert {entry["name"] for entry in json.loads((site / "leaderboard.json").read_text())} == set(NAMES)


def test_the_report_refuses_to_write_into_the_releases_folder(releases):
    releases_dir, data = releases
    with pytest.raises(ValueError, match="outside the releases folder"):
        write_report(releases_dir, releases_dir / "site", data_dir=data, progress=False)


def chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium; .ci/run does it)")
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def leaderboard_rows(dom: str) -> list[str]:
    body = dom.split('<table id="leaderboard">', 1)[1].split("</tbody>", 1)[0]
    return [row.split('"', 1)[0] for row in body.split('<tr data-model="')[1:]]


def test_chromium_renders_the_leaderboard_with_a_row_per_release(report):
    dom = chromium("--dump-dom", report.as_uri()).stdout
    assert sorted(leaderboard_rows(dom)) == sorted(NAMES)
    assert ">backward50</th>" in dom and "measured with" in dom


def test_chromium_sorts_the_leaderboard_by_a_column(report, compared):
    by_top1 = [m.name for m in sorted(compared, key=lambda m: m.result.top1)]
    dom = chromium("--dump-dom", report.as_uri() + "#sort=top-1").stdout
    assert leaderboard_rows(dom) == by_top1 and 'aria-sort="ascending"' in dom
    dom = chromium("--dump-dom", report.as_uri() + "#sort=-top-1").stdout
    assert leaderboard_rows(dom) == by_top1[::-1] and 'aria-sort="descending"' in dom


def test_chromium_renders_a_model_page_with_its_card(report):
    page = report.parent / "models" / f"{NAMES[0]}.html"
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert f"<h1>{NAMES[0]}</h1>" in dom and "A test release." in dom and "<table>" in dom
    assert "license: apache" not in dom  # the card's YAML front matter is not shown


def test_a_screenshot_of_the_leaderboard_is_not_blank(report, tmp_path):
    shot = tmp_path / "leaderboard.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,900", report.as_uri())
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (900, 1400)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text and plots, not an empty page


def test_the_readme_table_script_rewrites_only_its_marked_region(releases, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "testdist_table.py"
    spec = importlib.util.spec_from_file_location("testdist_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    releases_dir, data = releases
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{module.BEGIN}\nold table\n{module.END}\noutro\n")
    args = ["--releases", str(releases_dir), "--readme", str(readme), "--data-dir", str(data)]
    assert module.main(args) == 0
    text = readme.read_text()
    assert text.startswith(f"intro\n{module.BEGIN}\n| model | top-1 |") and text.endswith(f"{module.END}\noutro\n")
    assert "old table" not in text and all(f"`{name}`" in text for name in NAMES)
