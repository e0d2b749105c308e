"""benchmarks/bn_statistics.py: re-estimating BN statistics on a method's batches changes the statistics, never the
weights."""

import sys
from pathlib import Path

import pytest
import torch
from fixtures import shared_file
from safetensors.torch import save_file

import ltzoo
from ltzoo.models import inference_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a folder of scripts beside the package
from benchmarks.bn_statistics import restat, variant_config  # noqa: E402
from training.config import ConfigError  # noqa: E402

NAME = "resnet32_ce_drw_lsm_cifar10_lt.if100"


def test_a_variant_is_the_entrys_training_config_with_overrides():
    cfg = variant_config(NAME, ["method.p_mix=0.5", "method.mix_end=0"])
    assert cfg.full_name == NAME
    assert (cfg.method["name"], cfg.method["p_mix"], cfg.method["mix_end"]) == ("ce_drw_lsm", 0.5, 0)


def test_a_variant_without_a_value_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        variant_config(NAME, ["method.p_mix"])


def test_restat_replaces_the_bn_statistics_and_keeps_every_weight(tmp_path: Path):
    torch.manual_seed(0)
    trained = ltzoo.create_model(NAME)
    checkpoint = tmp_path / "model.safetensors"
    save_file(inference_state_dict(trained), checkpoint)
    cfg = variant_config(NAME, ["method.p_mix=1.0", f"data.root={shared_file('cifar10_train_jpeg.npz').parent}"])
    model = restat(checkpoint, cfg, epoch=100, batches=2)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 2
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    for key, value in trained.named_parameters():
        torch.testing.assert_close(model.get_parameter(key), value, rtol=0, atol=0)
    assert not model.training
