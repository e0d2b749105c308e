"""Method options: one check per method, run without data by a config load and by the constructor alike; the
paired-minority methods (CMO, SMCL, LSM) share one frozen options object with the engine's `PairedMixing`."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ltzoo.augment.paired import PairedMixing
from ltzoo.methods import check_method_options, method_defaults
from ltzoo.methods.cmo import CMO, CMOOptions
from ltzoo.methods.lsm import LSMMethod, LSMOptions
from ltzoo.methods.paired import PairedMinorityMethod, PairedOptions
from ltzoo.methods.smcl import SMCL, SMCLOptions
from ltzoo.registry import METHODS

COUNTS = [50, 20, 5]
REQUIRED = {"dscl_probe": {"init_from": "unused"}}
BAD = [  # (method, option, bad value, message); a method not registered on this branch is left out
    ("ce_drw", "drw_start", -1, "drw_start must be >= 0, got -1"),
    ("la", "tau", -1.0, "tau must be >= 0, got -1.0"),
    ("bcl", "temperature", 0.0, "temperature must be > 0, got 0.0"),
    ("concutmix", "patch_sampler", "balance", "patch_sampler 'balance' is now called 'class_balanced'"),
    ("dscl", "queue_size", -4, "queue_size must be >= 1, got -4"),
    ("dscl_probe", "fc_std", 0, "fc_std must be > 0, got 0"),
    ("smcl", "w_msc", -1.0, "w_msc must be >= 0, got -1.0"),
    ("ce_drw_lsm", "mix_beta", 0, "mix_beta must be > 0, got 0"),
    ("cmo", "p_aug", -0.5, "p_aug must be in [0, 1], got -0.5"),
]


def test_every_methods_defaults_pass_its_check():
    for name in METHODS:
        check_method_options(name, REQUIRED.get(name, {}))


@pytest.mark.parametrize(("name", "option", "value", "message"), [b for b in BAD if b[0] in METHODS])
def test_the_constructor_and_the_config_check_refuse_a_bad_option_with_one_message(name, option, value, message):
    options = {**REQUIRED.get(name, {}), option: value}
    with pytest.raises(ValueError, match=f"^method '{name}': {re.escape(message)}"):
        check_method_options(name, options)
    declared = METHODS[name]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        declared.cls(COUNTS, 10, **declared.options, **options)


def test_a_bad_cmo_option_is_refused_by_its_options_object():
    with pytest.raises(ValueError, match=re.escape("p_aug must be in [0, 1], got -0.5")):
        CMO(COUNTS, 10, p_aug=-0.5)


def test_cmo_smcl_and_lsm_extend_one_options_object_and_hand_the_engine_one_mixing_object():
    assert issubclass(SMCLOptions, CMOOptions) and issubclass(CMOOptions, PairedOptions)
    assert issubclass(LSMOptions, PairedOptions)
    for cls in (CMO, SMCL, LSMMethod):
        assert issubclass(cls, PairedMinorityMethod)
        method = cls(COUNTS, 10)
        assert isinstance(method.options, cls.Options) and isinstance(method.engine.mixing, PairedMixing)
        assert method.engine.mixing == method.options.mixing()
        with pytest.raises(dataclasses.FrozenInstanceError):
            method.options.drw_start = 0  # type: ignore[misc]


def test_a_paired_methods_config_options_are_its_options_objects_fields():
    assert set(method_defaults("smcl")) == {f.name for f in dataclasses.fields(SMCLOptions)}
    assert method_defaults("ce_lsm")["base_loss"] == "ce" and method_defaults("ce_drw_lsm")["base_loss"] == "ce_drw"
    assert method_defaults("smcl")["minor_sampler"] == "effective_number"


def test_lsm_options_map_onto_the_engines_gate_under_their_own_names():
    mixing = LSMOptions(p_mix=0.25, mix_start=-1, mix_end=0, mix_beta=2.0, tail_sampler="reversed").mixing()
    assert (mixing.p_aug, mixing.aug_start, mixing.aug_end, mixing.box_beta) == (0.25, -1, 0, 2.0)
    assert (mixing.minor_sampler, mixing.region) == ("reversed", "patch_topk")


def test_smcls_random_saliency_is_cmos_uniform_box():
    mixing = SMCLOptions(saliency="random", box_scope="per_batch", minor_sampler="class_balanced").mixing()
    assert mixing == CMOOptions().mixing()
