"""The `ltzoo` command: what each subcommand prints, and that bad input ends in one clear line, not a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ltzoo_cli import main

SHA = "cd" * 32


def test_list_prints_the_names_that_match_the_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "*smcl_cifar*"]) == 0
    assert capsys.readouterr().out.split() == ["resnet32_smcl_cifar100_lt", "resnet32_smcl_cifar10_lt"]


def test_list_says_when_nothing_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "*nothing*"]) == 0
    assert "no model matches '*nothing*'" in capsys.readouterr().err


def test_info_names_the_recipe_and_where_its_command_is_and_says_when_weights_are_missing(
        capsys: pytest.CaptureFixture[str], releases_table: Callable[..., Path]) -> None:
    assert main(["info", "resnet32_ce_cifar10_lt.if50"]) == 0
    out = capsys.readouterr().out
    assert ('recipe        resnet32_ce_cifar10_lt.if50  (the command that trains a recipe: ltzoo\'s README, '
            '"Rebuild any checkpoint")') in out
    assert "not published yet" in out


def test_info_of_a_two_stage_recipe_names_both_stages_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet32_dscl_cifar10_lt.if100"]) == 0
    assert "recipe        resnet32_dscl_cifar10_lt.if100 then resnet32_dscl_cifar10_lt.if100.probe" in \
        capsys.readouterr().out


def test_info_says_why_a_recipe_is_ltzoos_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet32_smcl_cifar10_lt"]) == 0
    assert "ltzoo's own recipe, not the paper's: the SMCL paper publishes neither code nor" in capsys.readouterr().out


def test_info_of_a_paper_recipe_has_no_ltzoo_recipe_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet32_bcl_cifar10_lt"]) == 0
    assert "ltzoo's own recipe" not in capsys.readouterr().out


def test_info_of_a_release_shows_its_sha256_metrics_and_measuring_command(
        capsys: pytest.CaptureFixture[str], releases_table: Callable[[dict[str, Any]], Path]) -> None:
    releases_table({"resnet32_ce_cifar10_lt.if100": {
        "sha256": SHA, "validate_command": "ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint x",
        "metrics": {"top1": 65.67, "many": 73.16, "medium": 35.7, "few": None}}})
    assert main(["info", "resnet32_ce_cifar10_lt"]) == 0
    out = capsys.readouterr().out
    assert f"weights       sha256 {SHA}" in out
    assert "measured      top-1 65.67  many 73.16  medium 35.70  few n/a" in out
    assert "by: ltzoo validate resnet32_ce_cifar10_lt.if100 --checkpoint x" in out


def test_a_misspelt_name_is_one_error_line_with_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet32_smcl_cifar10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "resnet32_smcl_cifar10_lt" in err and "Traceback" not in err


def test_validating_an_entry_without_weights_names_the_recipe_that_trains_them(
        capsys: pytest.CaptureFixture[str], releases_table: Callable[..., Path], tmp_path: Path) -> None:
    assert main(["validate", "resnet32_smcl_cifar10_lt.if50", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no published weights yet: rebuild them from the recipe resnet32_smcl_cifar10_lt.if50 (" in err
    assert '"Rebuild any checkpoint"' in err


def test_validating_a_missing_checkpoint_file_says_which_file(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    missing = tmp_path / "model.safetensors"
    assert main(["validate", "resnet32_ce_cifar10_lt", "--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err


def test_validating_a_release_folder_as_checkpoint_evaluates_its_weights(capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "resnet32_ce_cifar10_lt.if100"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    seen = []

    def recording_validate(name: str, **kwargs: object) -> None:
        seen.append(kwargs["checkpoint"])
        raise ValueError("recorded")

    monkeypatch.setattr("ltzoo.validate.validate", recording_validate)
    assert main(["validate", "resnet32_ce_cifar10_lt.if100", "--checkpoint", str(folder)]) == 2
    assert seen == [str(folder / "model.safetensors")]


def test_a_checkpoint_folder_without_weights_says_what_to_pass(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    assert main(["validate", "resnet32_ce_cifar10_lt", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path} is a folder without model.safetensors; pass --checkpoint a "
                          ".safetensors file or a release folder")


def test_missing_data_advice_names_the_cli_flag_not_api_options(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from ltzoo.data import DatasetNotFoundError

    def not_found(*args: object, **kwargs: object) -> None:
        raise DatasetNotFoundError("cifar10", "test", [f"{tmp_path}/cifar10_test_jpeg.npz (no such file)"])

    monkeypatch.setattr("ltzoo.validate.validate", not_found)
    assert main(["validate", "resnet32_ce_cifar10_lt", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-dir <folder> holding cifar-10-batches-py/ or cifar10_test_jpeg.npz" in err and "LTZOO_DATA" in err
    for api_only in ("root=", "download=True", "num_classes="):
        assert api_only not in err


def test_a_checkpoint_of_another_class_count_is_one_error_line_with_cli_advice(capsys: pytest.CaptureFixture[str],
                                                                               tmp_path: Path) -> None:
    """The Python API's fix (num_classes=) is no option of `ltzoo validate`; the line says what the CLI can do."""
    weights = tmp_path / "model.safetensors"  # CIFAR-10 weights, without the release's config.json beside them
    weights.write_bytes((Path(__file__).resolve().parents[1] / "releases" / "resnet32_ce_cifar10_lt.if100"
                         / "model.safetensors").read_bytes())
    assert main(["validate", "resnet32_ce_cifar100_lt", "--checkpoint", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {weights} holds a 10-class classifier but resnet32_ce_cifar100_lt has 100 classes; "
                          "pass --checkpoint weights trained on that name's benchmark, or name a zoo model of a "
                          "10-class benchmark")
    assert "num_classes=" not in err and err.count("\n") == 1
