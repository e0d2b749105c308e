"""Post-hoc logit adjustment and τ-normalisation: on cached outputs, on a model (create_model), and the τ sweep."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import ltzoo
from ltzoo.data.benchmark_sets import heldout_indices
from ltzoo.data.cifar import img_num_per_cls, long_tailed_indices
from ltzoo.evaluate import Predictions, compute_metrics, predict
from ltzoo.evaluation.posthoc import apply_posthoc, posthoc_logits, tau_normalized_weight
from ltzoo.evaluation.sweep import SweepResult, score_taus

COUNTS = [5000, 500, 50]


def tiny_predictions(logits, labels, features=None):
    return Predictions(logits=torch.as_tensor(logits, dtype=torch.float32), labels=torch.as_tensor(labels),
                       features=features, images_per_sec=None)


def test_logit_adjustment_subtracts_tau_times_the_log_training_prior():
    predictions = tiny_predictions([[1.0, 0.0, 0.0]], [0])
    adjusted = posthoc_logits(predictions, nn.Identity(), COUNTS, logit_adjust=0.5)
    prior = np.array(COUNTS) / sum(COUNTS)
    assert torch.allclose(adjusted, torch.tensor([[1.0, 0.0, 0.0]]) - 0.5 * torch.tensor(np.log(prior)).float())


def test_logit_adjustment_moves_a_close_call_from_the_head_to_the_tail():
    predictions = tiny_predictions([[2.0, 0.0, 1.5]], [2])
    assert posthoc_logits(predictions, nn.Identity(), COUNTS).argmax().item() == 0
    assert posthoc_logits(predictions, nn.Identity(), COUNTS, logit_adjust=1.0).argmax().item() == 2


def test_tau_norm_divides_each_class_vector_by_its_norm_to_the_tau():
    weight = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert torch.allclose(tau_normalized_weight(weight, 1.0).norm(dim=1), torch.ones(2))
    assert torch.allclose(tau_normalized_weight(weight, 0.5), weight / torch.tensor([[5.0**0.5], [2.0**0.5]]))
    assert torch.equal(tau_normalized_weight(weight, 0.0), weight)


def test_a_negative_tau_is_refused():
    with pytest.raises(ValueError, match="finite number ≥ 0"):
        posthoc_logits(tiny_predictions([[0.0, 1.0, 0.0]], [0]), nn.Identity(), COUNTS, logit_adjust=-1)


def test_tau_norm_of_a_cosine_classifier_says_it_needs_a_linear_head():
    model = ltzoo.create_model("resnet32_ldam_drw_cifar10_lt")
    with pytest.raises(ValueError, match="tau_norm needs a linear classifier, this model's is NormedLinear"):
        apply_posthoc(model, img_num_per_cls(5000, 10, 100), tau_norm=1.0)


@pytest.mark.parametrize("adjustment", [{"logit_adjust": 1.0}, {"tau_norm": 0.7}, {"logit_adjust": 0.5, "tau_norm": 1}])
def test_create_model_with_an_adjustment_predicts_what_the_cached_outputs_give(adjustment):
    torch.manual_seed(0)
    plain = ltzoo.create_model("resnet32_ce_cifar10_lt").eval()
    torch.manual_seed(0)
    adjusted = ltzoo.create_model("resnet32_ce_cifar10_lt", **adjustment).eval()
    images = torch.randn(6, 3, 32, 32)
    outputs = predict(plain, [(images, torch.zeros(6, dtype=torch.long))], progress=False, features=True)
    counts = img_num_per_cls(5000, 10, 100)  # the CIFAR-10-LT IF 100 training counts the release records
    expected = posthoc_logits(outputs, plain.get_classifier(), counts, **adjustment)
    with torch.inference_mode():
        assert torch.allclose(adjusted(images), expected, atol=1e-5)
    assert adjusted.pretrained_cfg["posthoc"] == {"logit_adjust": None, "tau_norm": None, **adjustment}


def test_the_cifar10_if100_heldout_split_is_outside_the_long_tailed_subset_and_lacks_the_head_class():
    labels = np.repeat(np.arange(10), 5000)  # the layout of CIFAR-10's balanced training set
    subset = long_tailed_indices(labels, 10, 100)
    heldout = heldout_indices(labels, subset, per_class=500)
    assert not np.isin(heldout, subset).any()
    assert np.bincount(labels[heldout], minlength=10).tolist() == [0] + [500] * 9


def test_the_sweep_picks_the_tau_that_scores_best_on_the_heldout_predictions():
    # the adjustment lifts class 1 over class 0 by τ·log(10): above 1.5 the class-1 images are right, above 3 the
    # class-0 ones turn wrong
    logits = [[2.0, 0.5], [2.0, 0.5], [3.0, 0.0], [3.0, 0.0]]
    scores, best = score_taus(tiny_predictions(logits, [1, 1, 0, 0]), nn.Identity(), [1000, 100], "logit_adjust",
                              [0.0, 1.0, 1.2, 2.0])
    assert scores == [50.0, 100.0, 100.0, 50.0]
    assert best == 1.0  # the smallest of the best


def test_the_sweep_report_lists_the_heldout_grid_marks_the_chosen_tau_and_shows_the_test_set_plain_and_adjusted():
    labels = [0, 0, 1, 1, 2, 2]
    plain = compute_metrics(torch.tensor([[3.0, 0, 0]] * 6), torch.tensor(labels), COUNTS)  # all class 0
    adjusted = compute_metrics(torch.eye(3)[labels], torch.tensor(labels), COUNTS)  # all right
    plain, adjusted = (replace(result, test_dists={"uniform": result.top1}) for result in (plain, adjusted))
    report = SweepResult(name="model.tag", kind="logit_adjust", taus=[0.0, 1.0, 2.0], heldout_top1=[40.0, 75.5, 70.0],
                         heldout_source="200 unused training images", best_tau=1.0, plain=plain,
                         adjusted=adjusted).format_report().splitlines()
    assert report[0] == "model.tag: logit_adjust τ sweep on the held-out split (never the test set):"
    assert report[1] == "  held-out: 200 unused training images"
    assert [line for line in report if "<- chosen" in line] == ["   1.00     75.50 %   <- chosen"]
    assert "test set at the chosen τ = 1:" in report
    assert next(line for line in report if line.strip().startswith("plain")).split()[1] == f"{plain.top1:.2f}"
    assert next(line for line in report if "τ=1" in line).split()[2] == "100.00"
    assert report[-1].split() == ["uniform", f"{plain.top1:.2f}", "100.00"]


def test_the_sweep_command_refuses_the_output_files_it_does_not_write(capsys):
    from ltzoo_cli import main

    assert main(["validate", "resnet32_ce_cifar10_lt", "--sweep", "logit_adjust", "--json", "out.json"]) == 2
    assert "--sweep prints the τ grid and the test metrics at the chosen τ; run it without" in capsys.readouterr().err


@pytest.mark.slow
def test_post_hoc_logit_adjustment_of_the_ce_release_at_the_heldout_tau():
    from fixtures import shared_file

    from ltzoo.evaluation.sweep import sweep

    shared_file("cifar10_train_jpeg.npz")
    result = sweep("resnet32_ce_cifar10_lt.if100", "logit_adjust", progress=False,
                   checkpoint="releases/resnet32_ce_cifar10_lt.if100/model.safetensors")
    assert result.best_tau == 2.4
    assert (result.plain.top1, result.adjusted.top1) == pytest.approx((65.67, 74.67))
    assert (result.adjusted.many, result.adjusted.medium) == pytest.approx((72.5875, 83.0))
