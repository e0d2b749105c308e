"""Training configs (training/config.py, training/configs/*.yaml): loading, overrides, strict keys, fingerprint.

The YAML files are the recipes' one source; what a config's name says (dataset, method, imbalance factor) is derived
from it at load, and a stated value must agree. No training here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ltzoo import registry
from ltzoo.methods import check_method_options

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `training` is a folder of scripts beside the package, not installed

import yaml  # noqa: E402

from ltzoo.benchmarks import imb_factor_of  # noqa: E402
from training import recipes  # noqa: E402
from training.config import ConfigError, config_from_dict, load_config  # noqa: E402

CONFIG_DIR = ROOT / "training" / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
CE_CIFAR10 = CONFIG_DIR / "resnet32_ce_cifar10_lt.if100.yaml"
DSCL_PROBE = CONFIG_DIR / "resnet32_dscl_cifar10_lt.if100.probe.yaml"


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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_the_config_is_a_stage_of_its_entrys_recipe(path: Path):
    assert f"training/configs/{path.name}" in recipes.stage_configs(load_config(path).full_name)


@pytest.mark.parametrize("name", sorted({load_config(p).full_name for p in CONFIGS}))
def test_every_stage_of_a_recipe_has_its_config(name: str):
    assert all((ROOT / config).is_file() for config in recipes.stage_configs(name)), recipes.stage_configs(name)


def test_the_imagenet_lt_probe_selects_its_epoch_on_val_and_the_cifar_probe_takes_the_last():
    """docs/methods/dscl.md §0.3: the probe epoch is chosen on ImageNet-LT's 20k val split; CIFAR has no val split
    (§5)."""
    assert load_config(CONFIG_DIR / "resnet50_dscl_imagenet_lt.e200.probe.yaml").select == "val"
    assert load_config(CONFIG_DIR / "resnet32_dscl_cifar10_lt.if100.probe.yaml").select == "last"


def test_a_two_stage_recipe_releases_its_last_stage_and_trains_both_in_order():
    entry, tag = registry.resolve("resnet32_dscl_cifar10_lt.if100")
    assert entry.recipe_ids(tag) == ["resnet32_dscl_cifar10_lt.if100", "resnet32_dscl_cifar10_lt.if100.probe"]
    assert recipes.release_config("resnet32_dscl_cifar10_lt.if100") == (
        "training/configs/resnet32_dscl_cifar10_lt.if100.probe.yaml")
    assert recipes.train_command("resnet32_dscl_cifar10_lt.if100") == (
        "accelerate launch -q training/train.py --config training/configs/resnet32_dscl_cifar10_lt.if100.yaml && "
        "accelerate launch -q training/train.py --config training/configs/resnet32_dscl_cifar10_lt.if100.probe.yaml")


def test_overrides_reach_nested_sections():
    cfg = load_config(CE_CIFAR10, ["optim.lr=0.05", "data.subset=256", "epochs=3"])
    assert (cfg.optim.lr, cfg.data.subset, cfg.epochs) == (0.05, 256, 3)
    assert cfg.optim.momentum == 0.9  # the rest of the section is kept


def test_override_can_add_a_key_to_a_free_form_section():
    cfg = load_config(CONFIG_DIR / "resnet32_la_cifar10_lt.if100.yaml", ["method.tau=2"])
    assert cfg.method == {"name": "la", "tau": 2}


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
    ("data.subset=[100]", "data.subset must be int or null, got [100]"),
    ("method=ce", "method must be dict, got 'ce'"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CE_CIFAR10, [override])


def test_an_integer_is_accepted_where_a_float_is_expected():
    cfg = load_config(CE_CIFAR10, ["optim.lr=1", "data.imb_factor=100"])
    assert (cfg.optim.lr, cfg.data.imb_factor) == (1.0, 100.0) and isinstance(cfg.optim.lr, float)
    assert isinstance(cfg.data.imb_factor, float)


@pytest.mark.parametrize("override", ["run_dir=/tmp/elsewhere", "eval_every=1", "release_dir=/tmp/rel",
                                      "keep_checkpoints=5", "data.root=/data", "data.num_workers=2"])
def test_fingerprint_ignores_settings_that_do_not_shape_the_weights(override: str):
    assert load_config(CE_CIFAR10, [override]).fingerprint() == load_config(CE_CIFAR10).fingerprint()


@pytest.mark.parametrize("override", ["optim.lr=0.05", "seed=1", "data.subset=256", "method.drw_start=1",
                                      "precision=fp32", "select=val"])
def test_fingerprint_changes_with_settings_that_shape_the_weights(override: str):
    ce_drw = CONFIG_DIR / "resnet32_ce_drw_cifar10_lt.if100.yaml"
    assert load_config(ce_drw, [override]).fingerprint() != load_config(ce_drw).fingerprint()


def test_fingerprint_is_stable_across_loads():
    assert load_config(CE_CIFAR10).fingerprint() == load_config(CE_CIFAR10).fingerprint()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_file_does_not_repeat_what_its_name_says(path: Path):
    """Dataset and imbalance factor come from the name and tag; the method too, except in a later stage's file."""
    raw = yaml.safe_load(path.read_text())
    assert "dataset" not in raw["data"] and "imb_factor" not in raw["data"]
    assert ("name" in raw.get("method", {})) == (stage(path) is not None)


@pytest.mark.parametrize("path", [p for p in CONFIGS if "cifar" in p.name], ids=lambda p: p.stem)
def test_cifar_config_trains_on_the_imbalance_factor_its_tag_names(path: Path):
    cfg = load_config(path)
    assert cfg.data.imb_factor == imb_factor_of(cfg.data.dataset, cfg.tag) == float(cfg.tag[2:].split("_")[0])


@pytest.mark.parametrize("path", [CE_CIFAR10, DSCL_PROBE, CONFIG_DIR / "resnet50_bcl_imagenet_lt.e90.yaml"],
                         ids=lambda p: p.stem)
def test_stating_the_derived_fields_with_the_names_values_changes_nothing(path: Path):
    cfg = load_config(path)
    imb_factor = "null" if cfg.data.imb_factor is None else cfg.data.imb_factor
    stated = [f"data.dataset={cfg.data.dataset}", f"data.imb_factor={imb_factor}",
              f"method.name={cfg.method['name']}"]
    assert load_config(path, stated).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(("override", "message"), [
    ("data.dataset=cifar100_lt",
     "data.dataset 'cifar100_lt' disagrees with name 'resnet32_ce_cifar10_lt' (dataset 'cifar10_lt')"),
    ("data.imb_factor=50",
     "data.imb_factor 50 disagrees with tag 'if100' of 'resnet32_ce_cifar10_lt' (imbalance factor 100.0)"),
    ("data.imb_factor=null",
     "data.imb_factor None disagrees with tag 'if100' of 'resnet32_ce_cifar10_lt' (imbalance factor 100.0)"),
    ("method.name=ce_drw", "method.name 'ce_drw' disagrees with name 'resnet32_ce_cifar10_lt' (method 'ce')"),
    ("tag=e100", "tag 'e100' of 'resnet32_ce_cifar10_lt' names no imbalance factor"),
    ("name=resnet32_ce_cifar10", "name 'resnet32_ce_cifar10' is not <arch>_<method>_<dataset>"),
])
def test_a_stated_field_that_disagrees_with_the_name_is_a_one_line_error_naming_both(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_config(CE_CIFAR10, [override])
    assert "\n" not in str(raised.value)


def test_a_large_scale_config_refuses_an_imbalance_factor_its_lists_fix():
    with pytest.raises(ConfigError, match="data.imb_factor 10 disagrees with tag 'e100' of 'resnet50_ce_imagenet_lt' "
                                          r"\(imbalance factor None\)"):
        load_config(CONFIG_DIR / "resnet50_ce_imagenet_lt.e100.yaml", ["data.imb_factor=10"])


def test_a_later_stage_file_must_state_that_stages_method():
    with pytest.raises(ConfigError, match=re.escape("method.name 'dscl' disagrees with stage 'probe' of "
                                                    "'resnet32_dscl_cifar10_lt' (method 'dscl_probe')")):
        load_config(DSCL_PROBE, ["method.name=dscl"])


def test_a_stage_the_method_does_not_have_is_an_error(tmp_path: Path):
    path = tmp_path / "resnet32_ce_cifar10_lt.if100.probe.yaml"
    path.write_text(CE_CIFAR10.read_text())
    with pytest.raises(ConfigError, match="config file stage 'probe': 'ce' has no such stage"):
        load_config(path)


def test_a_copy_of_a_stage_file_under_another_name_keeps_its_stated_stage_method(tmp_path: Path):
    path = tmp_path / "my_probe.yaml"
    path.write_text(DSCL_PROBE.read_text())
    assert load_config(path).to_dict() == load_config(DSCL_PROBE).to_dict()


@pytest.mark.parametrize("path", [CE_CIFAR10, DSCL_PROBE], ids=lambda p: p.stem)
def test_a_config_recorded_as_a_dict_loads_back_to_the_same_fingerprint(path: Path):
    """What a release's config.json and a checkpoint's meta.json hold (`to_dict()`), read by `config_from_dict`."""
    cfg = load_config(path)
    assert config_from_dict(cfg.to_dict()).fingerprint() == cfg.fingerprint()


def test_a_recorded_config_whose_dataset_disagrees_with_its_name_is_an_error():
    recorded = load_config(CE_CIFAR10).to_dict()
    recorded["data"]["dataset"] = "cifar100_lt"
    with pytest.raises(ConfigError, match="data.dataset 'cifar100_lt' disagrees with name"):
        config_from_dict(recorded)


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
    ("seed=-1", "seed must be >= 0, got -1"),
])
def test_a_value_out_of_range_is_an_error_naming_the_key_and_the_range(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CE_CIFAR10, [override])


def test_nesterov_without_momentum_is_an_error():
    with pytest.raises(ConfigError, match="optim.nesterov needs optim.momentum > 0"):
        load_config(CE_CIFAR10, ["optim.nesterov=true", "optim.momentum=0"])


@pytest.mark.parametrize(("override", "message"), [
    ("model.dropout=0.1", "unknown key(s) ['model.dropout']; CifarResNet takes"),
    ("model.pretrained_backbone=true", "unknown key(s) ['model.pretrained_backbone']; CifarResNet takes"),
    ("model.drop_rate=-1", "model.drop_rate must be in [0, 1), got -1"),
    ("model.drop_path_rate=1", "model.drop_path_rate must be in [0, 1), got 1"),
    ("model.drop_rate=abc", "model.drop_rate must be in [0, 1), got 'abc'"),
])
def test_a_model_argument_the_architecture_does_not_take_or_out_of_range_is_an_error_at_load(override: str,
                                                                                              message: str):
    """Without the check, an unknown argument stopped the run with a TypeError traceback after the data loaded, and
    a negative drop rate with a ValueError in the first forward pass."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CE_CIFAR10, [override])


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.pretrained_backbone=false", f"model.pretrained_backbone_sha256={'a' * 64}"],
     "model.pretrained_backbone_sha256 pins the weights of model.pretrained_backbone: true; set both or neither"),
    (["model.pretrained_backbone_sha256=abc123"],
     "model.pretrained_backbone_sha256 must be 64 lowercase hex digits, got 'abc123'"),
])
def test_a_backbone_sha256_pin_without_the_pretrained_backbone_or_not_a_sha256_is_an_error_at_load(
        overrides: list[str], message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(CONFIG_DIR / "resnet152_ce_places_lt.e30.yaml", overrides)


def test_every_architecture_of_the_zoo_names_the_class_whose_arguments_its_model_section_may_set():
    from training.config import ARCH_CLASSES
    assert set(ARCH_CLASSES) == set(registry.ARCHS)


@pytest.mark.parametrize("run_dir", ["/tmp/{foo}", "/tmp/{0}", "/tmp/{name"])
def test_a_run_dir_naming_another_placeholder_than_name_and_tag_is_an_error_at_load(run_dir: str):
    with pytest.raises(ConfigError, match=re.escape(f"run_dir {run_dir!r} may name only {{name}} and {{tag}}")):
        load_config(CE_CIFAR10, [f"run_dir={run_dir}"])


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


def config(stem: str) -> Path:
    return CONFIG_DIR / f"resnet32_{stem}_cifar10_lt.if100.yaml"


@pytest.mark.parametrize(("stem", "override", "message"), [
    ("bcl", "method.temperature=-1", "method 'bcl': temperature must be > 0, got -1"),
    ("bcl", "method.alpha=-0.5", "method 'bcl': alpha must be >= 0, got -0.5"),
    ("bcl", "method.feat_dim=0", "method 'bcl': feat_dim must be >= 1, got 0"),
    ("dscl", "method.queue_size=0", "method 'dscl': queue_size must be >= 1, got 0"),
    ("dscl", "method.queue_size=1.5", "method 'dscl': queue_size must be an integer >= 1, got 1.5"),
    ("dscl", "method.queue_size=1000", "method 'dscl': queue_size 1000 is not divisible by the global batch 256"),
    ("dscl", "method.momentum=1.5", "method 'dscl': momentum must be in [0, 1], got 1.5"),
    ("dscl", "method.patch_scale=[0.6, 0.05]",
     "method 'dscl': patch_scale must be a pair [a, b] with 0 <= a <= b <= 1"),
    ("smcl", "method.p_aug=1.2", "method 'smcl': p_aug must be in [0, 1], got 1.2"),
    ("smcl", "method.tau=abc", "method 'smcl': tau must be a number > 0, got 'abc'"),
    ("concutmix", "method.cutmix_prob=-0.1", "method 'concutmix': cutmix_prob must be in [0, 1], got -0.1"),
    ("ce_drw_lsm", "method.p_mix=2", "method 'ce_drw_lsm': p_mix must be in [0, 1], got 2"),
    ("ce_drw", "method.drw_start=-1", "method 'ce_drw': drw_start must be >= 0, got -1"),
    ("concutmix", "method.warm_epoch=-1", "method 'concutmix': warm_epoch must be >= 0, got -1"),
    ("ce_drw_lsm", "method.mix_end=-1", "method 'ce_drw_lsm': mix_end must be >= 0, got -1"),
    ("smcl", "method.aug_start=-2", "method 'smcl': aug_start must be >= -1, got -2"),
    ("ce_drw", "method.drw_beta=1", "method 'ce_drw': drw_beta must be in [0, 1), got 1"),
])
def test_a_method_option_out_of_range_is_an_error_naming_it_the_value_and_the_range(stem, override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        load_config(config(stem), [override])


@pytest.mark.parametrize(("stem", "override", "message"), [
    ("smcl", "method.proj=conv", "method 'smcl': unknown proj 'conv'; choose one of mlp, linear"),
    ("dscl", "method.key_bn=sync", "method 'dscl': unknown key_bn 'sync'; choose one of split, plain"),
    ("ce_drw_lsm", "method.tail_sampler=sqrt", "method 'ce_drw_lsm': unknown tail_sampler 'sqrt'; choose one of "
                                               "class_balanced, reversed"),
])
def test_a_method_option_outside_its_choices_is_an_error_listing_them(stem, override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        load_config(config(stem), [override])


@pytest.mark.parametrize(("stem", "override", "kind"), [
    ("concutmix", "method.patch_sampler=balance", "class_balanced"),
    ("concutmix", "method.patch_sampler=reverse", "reversed"),
    ("smcl", "method.minor_sampler=effnum", "effective_number"),
    ("smcl", "method.minor_sampler=cmo_uniform", "class_balanced"),
    ("ce_drw_lsm", "method.tail_sampler=class_uniform", "class_balanced"),
])
def test_a_retired_sampler_name_is_an_error_naming_the_kind_that_replaced_it(stem, override, kind):
    old = override.split("=")[1]
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{kind}'"):
        load_config(config(stem), [override])


def test_a_required_method_option_left_out_is_an_error():
    with pytest.raises(ConfigError, match=re.escape("method 'dscl_probe' needs option(s) ['init_from']")):
        load_config(CONFIG_DIR / "resnet32_dscl_cifar10_lt.if100.probe.yaml", ["method={name: dscl_probe}"])


def test_an_option_the_method_does_not_take_is_an_error_at_load():
    with pytest.raises(ConfigError, match=re.escape("method 'ce_drw' has no option(s) ['p_aug']")):
        load_config(config("ce_drw"), ["method.p_aug=0.5"])


def test_every_recipe_and_every_published_release_config_passes_the_option_checks():
    """The checks refuse nothing a recipe uses, nor what a release records (a release's config.json is read back by
    the training queue, whose fingerprint must equal its recipe's)."""
    for path in CONFIGS:
        load_config(path)
    for release in sorted((ROOT / "releases").glob("*/config.json")):
        recorded = json.loads(release.read_text())["ltzoo"]
        options = {k: v for k, v in recorded["config"]["method"].items() if k != "name"}
        check_method_options(recorded["config"]["method"]["name"], options)
        recipe = load_config(ROOT / recorded["recipe"])
        assert config_from_dict(recorded["config"]).fingerprint() == recipe.fingerprint(), release
