"""Training configs (training/config.py, training/configs/*.yaml): loading, overrides, strict keys, fingerprint.

No training here: everything is in-process except `make_configs.py`, which runs as a script into a temp copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ltzoo import registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package, not installed

from training.config import ConfigError, load_config  # noqa: E402
from training.make_configs import BASELINE_METHODS  # noqa: E402

CONFIG_DIR = ROOT / "training" / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
CE_CIFAR10 = CONFIG_DIR / "resnet32_ce_cifar10_lt.if100.yaml"


def test_there_are_configs_for_every_baseline_dataset():
    datasets = {load_config(path).data.dataset for path in CONFIGS}
    assert {"cifar10_lt", "cifar100_lt", "imagenet_lt", "inat2018", "places_lt"} <= datasets


def stage(path: Path) -> str | None:
    """`probe` for a multi-stage recipe file `<name>.<tag>.probe.yaml`; None for `<name>.<tag>.yaml`."""
    cfg = load_config(path)
    assert path.name.startswith(f"{cfg.full_name}.") and path.suffix == ".yaml", f"{path.name} is not {cfg.full_name}"
    rest = path.name[len(cfg.full_name) + 1 : -len(".yaml")]
    return rest or None


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_file_is_named_after_its_zoo_entry(path: Path):
    """`<name>.<tag>.yaml`, or `<name>.<tag>.<stage>.yaml` for a later stage of a multi-stage recipe."""
    assert stage(path) is None or re.fullmatch(r"[a-z][a-z0-9_]*", stage(path))
    assert registry.is_model(load_config(path).full_name)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_names_a_zoo_entry_of_its_dataset(path: Path):
    cfg = load_config(path)
    entry, tag = registry.resolve(cfg.full_name)
    assert (entry.name, tag) == (cfg.name, cfg.tag)
    assert entry.dataset == cfg.data.dataset


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_method_is_the_entrys_or_one_of_its_stages(path: Path):
    cfg = load_config(path)
    entry = registry.get_entry(cfg.full_name)
    assert cfg.method["name"] in registry.METHODS
    if stage(path) is None:
        assert cfg.method["name"] == entry.method
    else:
        assert cfg.method["name"] == f"{entry.method}_{stage(path)}"


@pytest.mark.parametrize("path", [p for p in CONFIGS if "cifar" in p.name], ids=lambda p: p.stem)
def test_cifar_config_trains_on_the_imbalance_factor_validate_evaluates(path: Path):
    cfg = load_config(path)
    assert cfg.data.imb_factor == registry.get_pretrained_cfg(cfg.full_name)["imb_factor"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_registry_lists_the_config_as_a_stage_of_its_recipe(path: Path):
    entry, tag = registry.resolve(load_config(path).full_name)
    assert f"training/configs/{path.name}" in entry.recipes(tag)


@pytest.mark.parametrize("name", sorted({load_config(p).full_name for p in CONFIGS}))
def test_every_stage_of_a_recipe_has_its_config(name: str):
    entry, tag = registry.resolve(name)
    assert all((ROOT / recipe).is_file() for recipe in entry.recipes(tag)), entry.recipes(tag)


def test_the_imagenet_lt_probe_selects_its_epoch_on_val_and_the_cifar_probe_takes_the_last():
    """docs/methods/dscl.md §0.3: the probe epoch is chosen on ImageNet-LT's 20k val split; CIFAR has no val split
    (§5)."""
    assert load_config(CONFIG_DIR / "resnet50_dscl_imagenet_lt.e200.probe.yaml").select == "val"
    assert load_config(CONFIG_DIR / "resnet32_dscl_cifar10_lt.if100.probe.yaml").select == "last"


def test_a_two_stage_recipe_releases_its_last_stage_and_trains_both_in_order():
    entry, tag = registry.resolve("resnet32_dscl_cifar10_lt.if100")
    assert entry.recipe(tag) == "training/configs/resnet32_dscl_cifar10_lt.if100.probe.yaml"
    assert entry.train_command(tag) == (
        "accelerate launch training/train.py --config training/configs/resnet32_dscl_cifar10_lt.if100.yaml && "
        "accelerate launch training/train.py --config training/configs/resnet32_dscl_cifar10_lt.if100.probe.yaml")


def test_overrides_reach_nested_sections():
    cfg = load_config(CE_CIFAR10, ["optim.lr=0.05", "data.subset=256", "epochs=3"])
    assert (cfg.optim.lr, cfg.data.subset, cfg.epochs) == (0.05, 256, 3)
    assert cfg.optim.momentum == 0.9  # the rest of the section is kept


def test_override_can_add_a_key_to_a_free_form_section():
    cfg = load_config(CE_CIFAR10, ["method.drw_start=1"])
    assert cfg.method == {"name": "ce", "drw_start": 1}


@pytest.mark.parametrize("override, key, expected", [
    ("data.subset=256", ("data", "subset"), 256),
    ("optim.lr=1e-3", ("optim", "lr"), 0.001),
    ("channels_last=false", ("channels_last",), False),
    ("data.root=null", ("data", "root"), None),
    ("schedule.milestones=[1, 2]", ("schedule", "milestones"), [1, 2]),
    ("precision=fp32", ("precision",), "fp32"),
])
def test_override_values_are_parsed_as_yaml(override: str, key: tuple[str, ...], expected):
    value = load_config(CE_CIFAR10, [override]).to_dict()
    for part in key:
        value = value[part]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("override, name, a_known_key", [
    ("epoch=3", "epoch", "epochs"),
    ("data.batchsize=64", "data.batchsize", "batch_size"),
    ("optim.learning_rate=0.1", "optim.learning_rate", "weight_decay"),
])
def test_unknown_key_is_an_error_naming_it_and_the_known_keys(override: str, name: str, a_known_key: str):
    with pytest.raises(ConfigError) as error:
        load_config(CE_CIFAR10, [override])
    message = str(error.value)
    assert repr(name) in message
    assert "known keys" in message and repr(a_known_key) in message


def test_unknown_key_in_the_yaml_file_is_an_error(tmp_path: Path):
    path = tmp_path / CE_CIFAR10.name
    path.write_text(CE_CIFAR10.read_text().replace("  batch_size: 128", "  batchsize: 128"))
    with pytest.raises(ConfigError, match=r"data\.batchsize"):
        load_config(path)


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(CE_CIFAR10, ["epochs"])


def test_missing_config_file_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "resnet32_ce_cifar10_lt.if1.yaml")


@pytest.mark.parametrize("override", ["precision=fp16", "epochs=0", "data.batch_size=-8", "select=best"])
def test_invalid_values_are_errors(override: str):
    with pytest.raises(ConfigError):
        load_config(CE_CIFAR10, [override])


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=abc", "optim.lr must be float, got 'abc'"),
    ("epochs=ten", "epochs must be int, got 'ten'"),
    ("epochs=2.5", "epochs must be int, got 2.5"),
    ("data.batch_size=true", "data.batch_size must be int, got True"),
    ("channels_last=maybe", "channels_last must be bool, got 'maybe'"),
    ("data.imb_factor=[100]", "data.imb_factor must be float or null, got [100]"),
    ("method=ce", "method must be dict, got 'ce'"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CE_CIFAR10, [override])


def test_an_integer_is_accepted_where_a_float_is_expected():
    cfg = load_config(CE_CIFAR10, ["optim.lr=1", "data.imb_factor=null"])
    assert (cfg.optim.lr, cfg.data.imb_factor) == (1.0, None) and isinstance(cfg.optim.lr, float)


@pytest.mark.parametrize("override", ["run_dir=/tmp/elsewhere", "eval_every=1", "release_dir=/tmp/rel",
                                      "keep_checkpoints=5", "data.root=/data", "data.num_workers=2"])
def test_fingerprint_ignores_settings_that_do_not_shape_the_weights(override: str):
    assert load_config(CE_CIFAR10, [override]).fingerprint() == load_config(CE_CIFAR10).fingerprint()


@pytest.mark.parametrize("override", ["optim.lr=0.05", "seed=1", "data.subset=256", "method.drw_start=1",
                                      "precision=fp32", "select=val"])
def test_fingerprint_changes_with_settings_that_shape_the_weights(override: str):
    assert load_config(CE_CIFAR10, [override]).fingerprint() != load_config(CE_CIFAR10).fingerprint()


def test_fingerprint_is_stable_across_loads():
    assert load_config(CE_CIFAR10).fingerprint() == load_config(CE_CIFAR10).fingerprint()


def test_make_configs_reproduces_the_committed_configs(tmp_path: Path):
    """Running the generator (in a copy, so the real folder is untouched) gives byte-identical YAML files."""
    script = tmp_path / "training" / "make_configs.py"
    script.parent.mkdir()
    shutil.copy(ROOT / "training" / "make_configs.py", script)
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True, cwd=tmp_path, timeout=120)
    generated = {p.name: p.read_text() for p in (tmp_path / "training" / "configs").glob("*.yaml")}
    committed = {p.name: p.read_text() for p in CONFIGS}
    assert generated, "make_configs.py wrote nothing"
    assert {name: text for name, text in committed.items() if name in generated} == generated
    baseline_configs = {p.name for p in CONFIGS if load_config(p).method["name"] in BASELINE_METHODS}
    assert baseline_configs == set(generated)  # no committed baseline config that the generator no longer makes


@pytest.mark.parametrize(("override", "message"), [
    ("keep_checkpoints=-1", "keep_checkpoints must be >= 1, got -1"),
    ("keep_checkpoints=0", "keep_checkpoints must be >= 1, got 0"),
    ("eval_every=0", "eval_every must be >= 1, got 0"),
    ("optim.lr=-0.1", "optim.lr must be > 0, got -0.1"),
    ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ("optim.lr=.nan", "optim.lr must be > 0, got nan"),
    ("optim.momentum=-0.9", "optim.momentum must be in [0, 1), got -0.9"),
    ("optim.momentum=1", "optim.momentum must be in [0, 1), got 1.0"),
    ("optim.weight_decay=-1e-4", "optim.weight_decay must be >= 0, got -0.0001"),
    ("optim.backbone_lr_scale=-1", "optim.backbone_lr_scale must be >= 0, got -1.0"),
    ("data.subset=0", "data.subset must be >= 1, got 0"),
    ("data.num_workers=-2", "data.num_workers must be >= 0, got -2"),
    ("data.imb_factor=0.5", "data.imb_factor must be >= 1, got 0.5"),
    ("seed=-1", "seed must be >= 0, got -1"),
])
def test_a_value_out_of_range_is_an_error_naming_the_key_and_the_range(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CE_CIFAR10, [override])


def test_nesterov_without_momentum_is_an_error():
    with pytest.raises(ConfigError, match="optim.nesterov needs optim.momentum > 0"):
        load_config(CE_CIFAR10, ["optim.nesterov=true", "optim.momentum=0"])


def test_an_override_that_is_not_valid_yaml_is_a_one_line_error_naming_it():
    with pytest.raises(ConfigError, match=r"^override 'optim.lr=\[0.1' is not valid YAML: .*line 1") as raised:
        load_config(CE_CIFAR10, ["optim.lr=[0.1"])
    assert "\n" not in str(raised.value)


def test_a_config_file_that_is_not_valid_yaml_is_a_one_line_error_naming_the_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntag: y\nepochs: [1\nseed: 0\n")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(str(path))} is not valid YAML: .* line \d+"):
        load_config(path)


def test_a_config_file_that_is_not_a_mapping_is_an_error(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of keys, got list"):
        load_config(path)
