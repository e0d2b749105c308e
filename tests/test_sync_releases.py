"""training/sync_releases.py: measured metrics travel from release folders into the registry and the README table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import ltzoo
from ltzoo.hub import WEIGHTS_NAME, save_pretrained, sha256_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `training` is a folder of scripts beside the package
from training import export, model_card  # noqa: E402
from training.export import local_weights  # noqa: E402
from training.model_card import render_model_card  # noqa: E402
from training.sync_releases import (  # noqa: E402
    collect,
    collect_seeds,
    config_changes,
    results_table,
    run_precision,
    update_ablation_cards,
    update_release_folders,
)

METRICS = {"top1": 71.5, "top5": 98.0, "many": 80.25, "medium": 50.0, "few": None, "ece": 0.1}  # a stand-in


CONFIG = {"epochs": 200, "run_dir": "~/runs/a", "method": {"name": "smcl", "saliency": "cam"}}


def release(releases: Path, full: str = "resnet32_ce_cifar10_lt.if100", metrics: dict | None = METRICS,
            config: dict = CONFIG) -> Path:
    name, tag = full.split(".")
    meta = {"name": name, "tag": tag, "method": name.split("_")[1], "dataset": "cifar10_lt", "paper": "x",
            "validate_command": f"ltzoo validate {full} --checkpoint x", "train_command": "accelerate launch …",
            "recipe": "r.yaml", "config": {**config, "seed": 0}, "train_seconds": 1.0, "hardware": "cpu",
            "precision": "bf16", "data_source": "shared JPEG archive"}
    if metrics is not None:
        meta["metrics"] = metrics
    return save_pretrained(ltzoo.create_model(full), releases / full, ltzoo_meta=meta)


def test_collect_records_the_weights_sha256_metrics_and_command(tmp_path: Path):
    out = release(tmp_path)
    record = collect(tmp_path)["resnet32_ce_cifar10_lt.if100"]
    assert record["sha256"] == sha256_file(out / WEIGHTS_NAME)
    assert record["metrics"] == METRICS
    assert record["validate_command"] == "ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint x"


def test_a_release_without_measured_metrics_is_refused(tmp_path: Path):
    release(tmp_path, metrics=None)
    with pytest.raises(SystemExit, match="no measured metrics"):
        collect(tmp_path)


def test_weights_that_do_not_match_their_config_are_refused(tmp_path: Path):
    out = release(tmp_path)
    config = json.loads((out / "config.json").read_text())
    config["ltzoo"]["files"][WEIGHTS_NAME] = "0" * 64
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="does not match the sha256"):
        collect(tmp_path)


def test_the_table_labels_paper_numbers_as_the_papers_and_shows_the_measuring_command(tmp_path: Path):
    release(tmp_path)
    table = results_table(collect(tmp_path))
    row = table.splitlines()[4]
    assert "paper's top-1 (source)" in table.splitlines()[2]
    assert row.startswith("| `resnet32_ce_cifar10_lt.if100` | 71.50 | 80.25 | 50.00 | n/a | 0.10 |")
    assert "70.36 (LDAM-DRW paper, Table 2)" in row
    assert "`ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint x`" in row


OPENCV = {**CONFIG, "run_dir": "~/runs/b", "method": {"name": "smcl", "saliency": "opencv_finegrained"}}


def test_an_ablation_is_described_by_its_config_change_without_bookkeeping_keys():
    assert config_changes(CONFIG, OPENCV) == 'method.saliency="opencv_finegrained"'


def test_a_key_the_release_config_predates_counts_as_its_default_not_as_a_change():
    assert config_changes(CONFIG, {**CONFIG, "select": "last", "precision": "fp32"}) == 'precision="fp32"'


def test_a_method_option_the_release_config_predates_counts_as_the_methods_default():
    recipe = {**CONFIG, "method": {"name": "smcl", "aug_end": 0}}
    assert config_changes(recipe, {**CONFIG, "method": {"name": "smcl"}}) == "method.aug_end=3"


def test_ablation_runs_join_their_release_and_its_card(tmp_path: Path):
    releases, ablations = tmp_path / "releases", tmp_path / "ablations"
    full = "resnet32_smcl_cifar10_lt.if100"
    release(releases, full)
    release(ablations / "saliency_opencv", full, metrics={**METRICS, "top1": 69.0}, config=OPENCV)
    table = collect(releases, ablations)
    update_release_folders(releases, table)
    (ablation,) = json.loads((releases / full / "config.json").read_text())["ltzoo"]["ablations"]
    assert ablation["variant"] == "saliency_opencv" and ablation["metrics"]["top1"] == 69.0
    card = (releases / full / "README.md").read_text()
    assert "## Ablations (measured by ltzoo)" in card
    assert '| `saliency_opencv` | `method.saliency="opencv_finegrained"` | 69.00 |' in card
    assert "↳ ablation `saliency_opencv`" in results_table(table)


def test_a_card_without_ablations_has_no_ablation_section(tmp_path: Path):
    out = release(tmp_path)
    assert "Ablations" not in render_model_card(json.loads((out / "config.json").read_text()))


def test_the_jpeg_note_quotes_the_recorded_jpeg_effect_with_its_command(tmp_path: Path, monkeypatch):
    effect = tmp_path / "jpeg_effect.json"
    effect.write_text(json.dumps({"command": "python benchmarks/jpeg_effect.py --json x", "train_images": 3000,
                                  "seeds": [0, 1], "top1": {"lossless": [47.4, 52.4], "jpeg_q75": [43.3, 51.3]},
                                  "jpeg_cost_points": 2.6}))
    monkeypatch.setattr(model_card, "JPEG_EFFECT", effect)
    card = render_model_card(json.loads((release(tmp_path) / "config.json").read_text()))
    assert ("lost 2.60 ± 1.50 points of held-out top-1 (mean ± standard error of 2 seeds, per seed +1.10 to +4.10; "
            "`python benchmarks/jpeg_effect.py --json x`)") in card


def test_the_jpeg_note_quotes_the_recorded_pixel_error_with_its_command(tmp_path: Path, monkeypatch):
    error = tmp_path / "jpeg_pixel_error.json"
    error.write_text(json.dumps({"command": "python benchmarks/jpeg_pixel_error.py --json x", "images": 4000,
                                 "mean_abs_error": 5.809, "worst_image_mean_abs_error": 12.99,
                                 "exact_fraction": 0.074}))
    monkeypatch.setattr(model_card, "JPEG_PIXEL_ERROR", error)
    card = render_model_card(json.loads((release(tmp_path) / "config.json").read_text()))
    assert ("Measured on the 4,000 training images that also exist bit-exact: mean absolute pixel error 5.81/255 "
            "against the originals (`python benchmarks/jpeg_pixel_error.py --json x`).") in card


def test_without_a_recorded_jpeg_effect_the_note_says_only_what_is_known(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(model_card, "JPEG_EFFECT", tmp_path / "absent.json")
    monkeypatch.setattr(model_card, "JPEG_PIXEL_ERROR", tmp_path / "absent_too.json")
    card = render_model_card(json.loads((release(tmp_path) / "config.json").read_text()))
    assert "JPEG (quality 75)" in card and "points" not in card and "/255" not in card


def test_the_card_of_an_ltzoo_recipe_says_so_and_why(tmp_path: Path):
    config = json.loads((release(tmp_path, "resnet32_smcl_cifar10_lt.if100") / "config.json").read_text())
    config["ltzoo"]["recipe_origin"] = "ltzoo"
    assert ("**The training recipe is ltzoo's own, not the paper's:** the SMCL paper publishes neither code nor "
            "hyper-parameters") in render_model_card(config)


def test_the_card_of_a_paper_recipe_makes_no_such_claim(tmp_path: Path):
    config = json.loads((release(tmp_path) / "config.json").read_text())
    config["ltzoo"]["recipe_origin"] = "paper"
    assert "ltzoo's own" not in render_model_card(config)


def test_the_card_names_the_code_and_hardware_that_trained_each_stretch_of_epochs(tmp_path: Path):
    config = json.loads((release(tmp_path) / "config.json").read_text())
    config["ltzoo"]["history"] = [{"from_epoch": 1, "revision": "unrecorded"},
                                  {"from_epoch": 99, "revision": "89d5012", "hardware": "2 threads"}]
    card = render_model_card(config)
    assert "- run: epochs 1–98: code `unrecorded`; epochs 99–200: code `89d5012` on 2 threads" in card
    assert "- hardware:" not in card


STAGE1 = {"recipe": "s1.yaml", "epochs": 400, "train_seconds": 27000.0, "as_recipe": True,
          "history": [{"from_epoch": 1, "revision": "abc", "hardware": "2 threads, bf16"}]}


def test_a_probe_card_adds_the_stage_it_starts_from_to_its_time_and_provenance(tmp_path: Path):
    config = json.loads((release(tmp_path, "resnet32_dscl_cifar10_lt.if100") / "config.json").read_text())
    config["ltzoo"].update(train_seconds=1800.0, earlier_stage=STAGE1)
    card = render_model_card(config)
    assert "- training time: 0.50 h (8.00 h with the stage it starts from), precision bf16" in card
    assert ("- starts from: `s1.yaml` after 400 epochs (7.50 h); its run: epochs 1–400: code `abc` on 2 threads, "
            "bf16") in card


def test_a_probe_card_says_when_its_first_stage_ran_another_config_than_its_recipe_file(tmp_path: Path):
    config = json.loads((release(tmp_path, "resnet32_dscl_cifar10_lt.if100") / "config.json").read_text())
    config["ltzoo"]["earlier_stage"] = {**STAGE1, "as_recipe": False}
    assert "(7.50 h), trained with a config that differs from that file (overrides or a later edit)" in \
        render_model_card(config)


def test_a_release_from_before_the_run_history_names_its_hardware_instead(tmp_path: Path):
    card = render_model_card(json.loads((release(tmp_path) / "config.json").read_text()))
    assert "- run:" not in card and "- hardware (the run's last process): cpu" in card


def test_a_published_card_loads_the_hub_weights(tmp_path: Path):
    card = render_model_card(json.loads((release(tmp_path) / "config.json").read_text()))
    assert 'ltzoo.create_model("resnet32_ce_cifar10_lt.if100", pretrained=True)' in card


def test_an_unpublished_card_loads_its_own_weights_file_and_not_the_hub(tmp_path: Path):
    out = release(tmp_path)
    card = render_model_card(json.loads((out / "config.json").read_text()), local_weights(out))
    assert f'checkpoint_path="{WEIGHTS_NAME}"' in card  # outside the repository: relative to the card's folder
    assert "pretrained=True" not in card


def test_only_folders_of_the_repository_releases_count_as_published(tmp_path: Path):
    assert local_weights(export.RELEASES / "resnet32_ce_cifar10_lt.if100") is None
    assert local_weights(export.ROOT / "results/ablations/lr0.1/x") == "results/ablations/lr0.1/x/model.safetensors"
    assert local_weights(tmp_path / "x") == WEIGHTS_NAME  # no machine path: the file beside the card


def test_sync_rerenders_each_ablation_card_to_load_its_own_file(tmp_path: Path):
    out = release(tmp_path / "lr0.1")
    (out / "README.md").write_text("stale")
    update_ablation_cards(tmp_path)
    assert f'checkpoint_path="{WEIGHTS_NAME}"' in (out / "README.md").read_text()


def test_an_ablation_card_says_it_is_not_the_release(tmp_path: Path):
    out = release(tmp_path)
    card = render_model_card(json.loads((out / "config.json").read_text()), local_weights(out))
    assert "**This run is not the release of `resnet32_ce_cifar10_lt.if100`:**" in card


def test_a_former_release_moved_to_the_ablations_loses_its_ablation_table(tmp_path: Path):
    out = release(tmp_path / "paper_recipe")
    config = json.loads((out / "config.json").read_text())
    config["ltzoo"]["ablations"] = [{"variant": "lr0.1"}]
    (out / "config.json").write_text(json.dumps(config))
    update_ablation_cards(tmp_path)
    assert "ablations" not in json.loads((out / "config.json").read_text())["ltzoo"]
    assert "## Ablations" not in (out / "README.md").read_text()


def metrics(top1: float) -> dict:
    return {**METRICS, "top1": top1}


def test_the_table_has_one_block_per_imbalance_factor_largest_first(tmp_path: Path):
    for full in ("resnet32_ce_cifar10_lt.if10", "resnet32_ce_cifar10_lt.if100", "resnet32_ce_cifar10_lt.if50"):
        release(tmp_path, full)
    titles = [line for line in results_table(collect(tmp_path)).splitlines() if line.startswith("**")]
    assert titles == ["**CIFAR-10-LT, IF 100**", "**CIFAR-10-LT, IF 50**", "**CIFAR-10-LT, IF 10**"]


def test_each_method_is_compared_with_ce_and_with_the_method_it_builds_on(tmp_path: Path):
    release(tmp_path, "resnet32_ce_cifar10_lt.if50", metrics(60.0))
    release(tmp_path, "resnet32_ce_drw_cifar10_lt.if50", metrics(65.0))
    release(tmp_path, "resnet32_smcl_cifar10_lt.if50", metrics(64.5))
    table = results_table(collect(tmp_path))
    smcl = next(line for line in table.splitlines() if line.startswith("| `resnet32_smcl"))
    assert "| +4.50 | -0.50 (ce_drw) |" in smcl
    assert "Not above the method it builds on: `smcl` -0.50 against `ce_drw`." in table


def seed_result(seeds: Path, seed: int, full: str, top1: float, precision: str = "bf16") -> None:
    release(seeds / f"seed{seed}", full, metrics(top1), config={**CONFIG, "seed": seed})
    config_file = seeds / f"seed{seed}" / full / "config.json"
    config = json.loads(config_file.read_text())
    config["ltzoo"]["config"]["seed"] = seed
    config["ltzoo"]["precision"] = precision
    config_file.write_text(json.dumps(config))


def test_other_seeds_give_a_mean_and_std_row_and_say_which_differences_are_noise(tmp_path: Path):
    releases, seeds = tmp_path / "releases", tmp_path / "seeds"
    release(releases, "resnet32_ce_cifar10_lt.if100", metrics(60.0))
    release(releases, "resnet32_ce_drw_cifar10_lt.if100", metrics(70.0))
    release(releases, "resnet32_bsce_cifar10_lt.if100", metrics(70.5))
    seed_result(seeds, 1, "resnet32_ce_drw_cifar10_lt.if100", 71.0)
    seed_result(seeds, 2, "resnet32_ce_drw_cifar10_lt.if100", 72.0)
    table = results_table(collect(releases), collect_seeds(seeds))
    row = next(line for line in table.splitlines() if line.startswith("| ↳ seeds"))
    assert row.startswith("| ↳ seeds 0, 1, 2 (mean ± std) | 71.00 ± 1.00 | 80.25 ± 0.00 |")
    assert row.count("`ltzoo validate resnet32_ce_drw_cifar10_lt.if100") == 3  # each seed's measuring command
    assert "Seed spread (sample std of top-1): `ce_drw` 1.00 (3 seeds)." in table
    assert "under twice the larger (2.00) are within the seed spread: `ce_drw` / `bsce` (0.50)." in table


def test_seeds_trained_at_different_precisions_say_so_in_their_row_and_under_the_table(tmp_path: Path):
    releases, seeds = tmp_path / "releases", tmp_path / "seeds"
    release(releases, "resnet32_ce_drw_cifar10_lt.if100", metrics(70.0))  # bf16
    seed_result(seeds, 1, "resnet32_ce_drw_cifar10_lt.if100", 71.0, precision="fp32")
    seed_result(seeds, 2, "resnet32_ce_drw_cifar10_lt.if100", 72.0, precision="fp32")
    table = results_table(collect(releases), collect_seeds(seeds))
    row = next(line for line in table.splitlines() if line.startswith("| ↳ seeds"))
    assert "| 0.10 ± 0.00 | seed 0 bf16, seeds 1, 2 fp32 | – |" in row  # ECE's spread, then the precisions
    assert "so these spreads include the precision's effect as well as the seed's: `ce_drw` (seed 0 bf16, " in table


def test_seeds_at_one_precision_name_none(tmp_path: Path):
    releases, seeds = tmp_path / "releases", tmp_path / "seeds"
    release(releases, "resnet32_ce_drw_cifar10_lt.if100", metrics(70.0))
    seed_result(seeds, 1, "resnet32_ce_drw_cifar10_lt.if100", 71.0)
    table = results_table(collect(releases), collect_seeds(seeds))
    row = next(line for line in table.splitlines() if line.startswith("| ↳ seeds 0, 1 (mean ± std) |"))
    assert "| 0.10 ± 0.00 | bf16 | – |" in row and "different precisions" not in table


def test_each_row_names_its_precision_and_a_block_of_mixed_precisions_says_so(tmp_path: Path):
    release(tmp_path, "resnet32_ce_cifar10_lt.if50", metrics(60.0))  # bf16
    release(tmp_path, "resnet32_ce_drw_cifar10_lt.if50", metrics(65.0))
    config_file = tmp_path / "resnet32_ce_drw_cifar10_lt.if50" / "config.json"
    config = json.loads(config_file.read_text())
    config["ltzoo"]["history"] = [{"from_epoch": 1, "revision": "abc", "hardware": "1 process(es) on x86_64 CPU, fp32"}]
    config_file.write_text(json.dumps(config))
    table = results_table(collect(tmp_path))
    ce_drw = next(line for line in table.splitlines() if line.startswith("| `resnet32_ce_drw"))
    assert "| 0.10 | fp32 | +5.00 |" in ce_drw
    assert "a difference between them includes the precision's effect: bf16: `ce`; fp32: `ce_drw`." in table


@pytest.mark.parametrize(("hardware", "expected"), [
    ([], "bf16"),  # no history: the export's precision
    (["1 process(es) on x86_64 CPU, 2 threads"], "bf16"),  # a segment from before the hardware named it
    (["1 process(es) on x86_64 CPU, 2 threads, fp32", "1 × NVIDIA H100, fp32, torch.compile"], "fp32"),
    (["1 process(es) on x86_64 CPU, 2 threads, bf16", "1 process(es) on x86_64 CPU, 2 threads, fp32"], "bf16+fp32"),
])
def test_a_runs_precision_is_every_precision_its_history_trained_in(hardware: list[str], expected: str):
    history = [{"from_epoch": 1 + 50 * i, "revision": "abc", "hardware": h} for i, h in enumerate(hardware)]
    assert run_precision({"precision": "bf16", "history": history}) == expected


def test_sync_strips_machine_paths_from_release_and_ablation_configs(tmp_path: Path):
    machine = {**CONFIG, "data": {"root": "/work/shared/data"}}
    out = release(tmp_path / "releases", config=machine)
    ablation = release(tmp_path / "ablations" / "lr0.1", config=machine)
    for folder in (out, ablation):
        config = json.loads((folder / "config.json").read_text())
        config["ltzoo"]["data_source"] = "shared JPEG archive at /work/shared/data/cifar10_train_jpeg.npz"
        (folder / "config.json").write_text(json.dumps(config))
    update_release_folders(tmp_path / "releases", collect(tmp_path / "releases", tmp_path / "ablations"))
    update_ablation_cards(tmp_path / "ablations")
    for folder in (out, ablation):
        assert "/work/" not in (folder / "config.json").read_text() + (folder / "README.md").read_text()
        assert "at cifar10_train_jpeg.npz" in (folder / "README.md").read_text()


@pytest.mark.parametrize("release", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "releases").iterdir()
                                           if p.is_dir()))
def test_every_release_card_parses_with_its_measured_eval_results(release: str) -> None:
    from huggingface_hub import ModelCard

    folder = Path(__file__).resolve().parents[1] / "releases" / release
    card = ModelCard.load(folder / "README.md")
    metrics = json.loads((folder / "config.json").read_text())["ltzoo"]["metrics"]
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert card.data.library_name == "timm" and card.data.datasets
    assert all(r.dataset_split == "test" for r in card.data.eval_results)
    assert results["top-1"] == round(metrics["top1"], 2) and results["ECE (%)"] == round(metrics["ece"], 2)
    assert results["many-shot top-1"] == round(metrics["many"], 2)


def test_a_card_shows_the_release_with_and_without_its_recorded_posthoc_adjustment(tmp_path: Path):
    out = release(tmp_path)
    config = json.loads((out / "config.json").read_text())
    config["ltzoo"]["posthoc"] = [{"kind": "logit_adjust", "tau": 2.4, "heldout": "4,500 unused training images",
                                   "metrics": {**METRICS, "top1": 74.67},
                                   "command": "ltzoo validate x --checkpoint y --sweep logit_adjust"}]
    card = render_model_card(config)
    assert "| plain | – | 71.50 | 80.25 | 50.00 | n/a | 0.10 |" in card
    assert "| logit adjust | 2.4 | 74.67 | 80.25 | 50.00 | n/a | 0.10 |" in card
    assert "never on the test set (4,500 unused training images)" in card and "--sweep logit_adjust" in card


def test_recording_a_posthoc_sweep_stores_the_chosen_tau_and_its_test_metrics_and_keeps_the_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torch

    from ltzoo.evaluate import compute_metrics
    from ltzoo.evaluation.sweep import SweepResult
    from training import record_posthoc

    out = release(tmp_path)
    weights = sha256_file(out / WEIGHTS_NAME)
    labels = torch.arange(10).repeat(3)
    counts = [5000 // 2**k for k in range(10)]
    plain = compute_metrics(torch.zeros(30, 10), labels, counts)  # every image called class 0
    adjusted = compute_metrics(torch.eye(10)[labels], labels, counts)  # every image right
    swept = []

    def sweep(name, kind, checkpoint, data_dir):
        swept.append((name, kind, checkpoint))
        return SweepResult(name=name, kind=kind, taus=[0.0, 2.4], heldout_top1=[60.0, 70.0],
                           heldout_source="450 unused training images", best_tau=2.4, plain=plain, adjusted=adjusted)

    monkeypatch.setattr(record_posthoc, "sweep", sweep)
    for _ in range(2):  # recording the same kind again replaces its entry
        record_posthoc.record(out, "logit_adjust")
    assert swept[0] == ("resnet32_ce_cifar10_lt.if100", "logit_adjust", out / WEIGHTS_NAME)
    [entry] = json.loads((out / "config.json").read_text())["ltzoo"]["posthoc"]
    assert (entry["kind"], entry["tau"], entry["heldout"]) == ("logit_adjust", 2.4, "450 unused training images")
    assert entry["metrics"] == {"top1": 100.0, "many": 100.0, "medium": 100.0, "few": 100.0, "ece": adjusted.ece}
    assert entry["command"].endswith("--sweep logit_adjust")
    assert "| logit adjust | 2.4 | 100.00 |" in (out / "README.md").read_text()
    assert sha256_file(out / WEIGHTS_NAME) == weights
