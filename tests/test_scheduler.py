"""LR schedules (docs/methods/baselines.md §5, docs/methods/concutmix.md §4 item 11, docs/methods/dscl.md §6 item 10),
build_scheduler and set_lr."""

import re
import sys
from pathlib import Path

import pytest
import torch

from ltzoo.scheduler import IterWarmupCosineLR, WarmupCosineLR, WarmupStepLR, build_scheduler, set_lr


@pytest.mark.parametrize(("epoch", "lr"), [(0, 0.02), (4, 0.1), (159, 0.1), (160, 1e-3), (180, 1e-5)])
def test_cifar_step_schedule(epoch, lr):
    schedule = WarmupStepLR(0.1, warmup_epochs=5, milestones=(160, 180), gammas=(0.01, 0.01))
    assert schedule.lr_at(epoch) == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize(
    ("epoch", "lr"), [(0, 0.03), (1, 0.06), (4, 0.15), (159, 0.15), (160, 0.015), (180, 0.0015)]
)
def test_bcl_cifar_step_schedule(epoch, lr):
    schedule = WarmupStepLR(0.15, warmup_epochs=5, milestones=(160, 180), gammas=(0.1, 0.1))
    assert schedule.lr_at(epoch) == pytest.approx(lr, rel=1e-12)


def test_ten_epoch_warmup_starts_at_a_tenth():
    schedule = WarmupStepLR(0.15, warmup_epochs=10, milestones=(360, 380), gammas=(0.1, 0.1))
    assert schedule.lr_at(0) == pytest.approx(0.015)


def test_step_schedule_is_constant_within_an_epoch_by_default():
    schedule = WarmupStepLR(0.1, warmup_epochs=5, milestones=(160,), gammas=(0.01,))
    assert schedule.lr_at(2, iteration=99, iters_per_epoch=100) == schedule.lr_at(2)


def test_per_iteration_step_schedule_ramps_within_the_warmup_epoch():
    schedule = WarmupStepLR(0.1, warmup_epochs=5, per_iteration=True)
    assert schedule.lr_at(0, iteration=50, iters_per_epoch=100) == pytest.approx(0.1 * 1.5 / 5)
    assert schedule.lr_at(1) == pytest.approx(0.04)


def test_zero_warmup_starts_at_the_base_rate():
    schedule = WarmupStepLR(0.1, warmup_epochs=0, milestones=(10, 20), gammas=(0.1, 0.1))
    assert [schedule.lr_at(e) for e in (0, 10, 20)] == pytest.approx([0.1, 0.01, 0.001])


def test_milestones_and_gammas_must_pair_up():
    with pytest.raises(ValueError):
        WarmupStepLR(0.1, warmup_epochs=5, milestones=(160, 180), gammas=(0.1,))


@pytest.mark.parametrize(
    ("epochs", "epoch", "lr"),
    [(90, 0, 0.0999702), (90, 45, 0.0491370), (90, 89, 2.97930e-5), (100, 0, 0.0999758), (100, 99, 2.41859e-5)],
)
def test_bcl_cosine_schedule(epochs, epoch, lr):
    schedule = WarmupCosineLR(0.1, epochs=epochs, warmup_epochs=0)
    assert schedule.lr_at(epoch) == pytest.approx(lr, rel=1e-5)


def test_bcl_cosine_warmup_is_linear_in_epoch_plus_one():
    schedule = WarmupCosineLR(0.1, epochs=100, warmup_epochs=4)
    assert [schedule.lr_at(e) for e in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])


@pytest.mark.parametrize(
    ("epoch", "iteration", "lr"),
    [(0, 0, 0.0), (5, 0, 0.05), (10, 0, 0.1), (105, 0, 0.05), (199, 451, 3.3455e-11)],
)
def test_dscl_iteration_schedule(epoch, iteration, lr):
    schedule = IterWarmupCosineLR(0.1, epochs=200, warmup_epochs=10)
    assert schedule.lr_at(epoch, iteration, iters_per_epoch=452) == pytest.approx(lr, rel=1e-4, abs=1e-15)


def test_dscl_warmup_grows_within_an_epoch():
    schedule = IterWarmupCosineLR(0.1, epochs=200, warmup_epochs=10)
    assert schedule.lr_at(0, 226, 452) == pytest.approx(0.005)


def test_iteration_outside_the_epoch_is_rejected():
    with pytest.raises(ValueError):
        IterWarmupCosineLR(0.1, epochs=200, warmup_epochs=10).lr_at(0, 452, 452)


def test_build_scheduler_from_a_plain_dict():
    cfg = {"name": "warmup_step", "warmup_epochs": 5, "milestones": [160, 180], "gammas": [0.01, 0.01]}
    assert build_scheduler(cfg, 0.1, 200) == WarmupStepLR(0.1, 5, (160, 180), (0.01, 0.01))
    assert cfg["name"] == "warmup_step"


def test_build_scheduler_knows_every_schedule():
    cosine = build_scheduler({"name": "warmup_cosine", "warmup_epochs": 0}, 0.1, 90)
    per_iter = build_scheduler({"name": "iter_warmup_cosine", "warmup_epochs": 10}, 0.1, 200)
    assert cosine == WarmupCosineLR(0.1, 90, 0)
    assert per_iter == IterWarmupCosineLR(0.1, 200, 10)


def test_a_cosine_schedule_ends_with_the_run_it_is_built_for():
    short = build_scheduler({"name": "iter_warmup_cosine", "warmup_epochs": 1}, 0.1, 3)
    assert short.lr_at(2, 99, 100) == pytest.approx(0.0, abs=1e-4)


def test_build_scheduler_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown schedule name"):
        build_scheduler({"name": "onecycle"}, 0.1, 200)


def test_build_scheduler_rejects_an_unknown_key():
    with pytest.raises(ValueError, match="milestone"):
        build_scheduler({"name": "warmup_step", "warmup_epochs": 5, "milestone": [160]}, 0.1, 200)


def test_the_schedule_takes_its_length_from_the_run_not_a_second_copy():
    with pytest.raises(ValueError, match="epochs the config's epochs"):
        build_scheduler({"name": "warmup_cosine", "warmup_epochs": 5, "epochs": 90}, 0.1, 90)


def test_set_lr_respects_per_group_scales():
    backbone, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(
        [{"params": backbone.parameters(), "lr_scale": 0.01}, {"params": head.parameters()}], lr=1.0
    )
    set_lr(optimizer, 0.1)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.001, 0.1])


@pytest.mark.parametrize(("cfg", "message"), [
    ({"name": "warmup_step", "warmup_epochs": -5}, "warmup_epochs must be an integer >= 0, got -5"),
    ({"name": "warmup_step", "warmup_epochs": "five"}, "warmup_epochs must be an integer >= 0, got 'five'"),
    ({"name": "warmup_step", "warmup_epochs": 0, "milestones": [160, -1], "gammas": [0.1, 0.1]},
     "milestones must be numbers >= 0, got [160, -1]"),
    ({"name": "warmup_step", "warmup_epochs": 0, "milestones": [160], "gammas": [-0.1]},
     "gammas must be numbers > 0, got [-0.1]"),
    ({"name": "iter_warmup_cosine", "warmup_epochs": 2.5}, "warmup_epochs must be an integer >= 0, got 2.5"),
])
def test_a_schedule_value_out_of_range_is_an_error_naming_it(cfg: dict, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_scheduler(cfg, 0.1, 200)


def test_every_committed_training_config_builds_its_schedule():
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # `training` is a folder of scripts beside the package
    from training.config import load_config

    for path in sorted((root / "training" / "configs").glob("*.yaml")):
        cfg = load_config(path)
        build_scheduler(cfg.schedule, cfg.optim.lr, cfg.epochs)
