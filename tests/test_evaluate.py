"""Long-tail metrics (docs/methods/baselines.md §2), the evaluation loop and the per-class figure."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ltzoo
from ltzoo.evaluate import EvalResult, compute_metrics, evaluate, plot_per_class, predict


def one_hot_logits(predictions, num_classes):
    """Logits whose argmax is ``predictions``."""
    return torch.nn.functional.one_hot(torch.tensor(predictions), num_classes).float()


# Four classes with training counts 500 (many), 100 and 20 (medium: 20 is medium), 5 (few).
TRAIN_COUNTS = [500, 100, 20, 5]
# Class 0: 2/2 correct; class 1: 1/1; class 2: 0/3; class 3: 1/2.
LABELS = [0, 0, 1, 2, 2, 2, 3, 3]
PREDICTIONS = [0, 0, 1, 0, 1, 3, 3, 0]


@pytest.fixture
def result():
    return compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), TRAIN_COUNTS)


def test_top1_is_plain_sample_accuracy(result):
    assert result.top1 == pytest.approx(100.0 * 4 / 8)


def test_per_class_accuracy(result):
    assert result.per_class == pytest.approx([100.0, 100.0, 0.0, 50.0])


def test_group_accuracy_is_the_unweighted_mean_of_its_classes(result):
    assert result.many == pytest.approx(100.0)
    assert result.medium == pytest.approx((100.0 + 0.0) / 2)


def test_a_class_with_exactly_20_training_images_is_medium(result):
    assert result.group_sizes == {"many": 1, "medium": 2, "few": 1}
    assert result.few == pytest.approx(50.0)


def test_an_empty_group_is_none_not_zero():
    result = compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), [500, 100, 20, 25])
    assert result.few is None
    assert result.group_sizes["few"] == 0


def test_a_class_without_test_images_has_no_accuracy_and_is_left_out_of_its_group():
    result = compute_metrics(one_hot_logits([0, 0, 1], 3), torch.tensor([0, 1, 1]), [200, 150, 5])
    assert result.per_class == [100.0, 50.0, None]
    assert result.many == pytest.approx(75.0)
    assert result.few is None


def test_top5_counts_the_true_class_within_the_five_highest_logits():
    logits = torch.arange(7, 0, -1, dtype=torch.float32).expand(3, 7)  # class k has rank k
    result = compute_metrics(logits, torch.tensor([0, 4, 5]), [1000] * 7)
    assert result.top1 == pytest.approx(100.0 / 3)
    assert result.top5 == pytest.approx(200.0 / 3)


def test_tied_logits_count_for_the_lowest_class_index_as_argmax_does():
    result = compute_metrics(torch.zeros(2, 6), torch.tensor([0, 1]), [1000] * 6)
    assert result.top1 == pytest.approx(50.0)
    assert result.confusion[:2, 0].tolist() == [1, 1]


def test_ece_is_the_bin_size_weighted_gap_between_accuracy_and_confidence():
    # Binary logits with max-softmax 0.55 (bin 9 of 15) and 0.9 (bin 14 of 15).
    low, high = math.log(0.55 / 0.45), math.log(0.9 / 0.1)
    logits = torch.tensor([[low, 0.0], [low, 0.0], [high, 0.0], [high, 0.0], [high, 0.0]])
    labels = torch.tensor([0, 1, 0, 0, 0])
    # Bin 9: accuracy 1/2, confidence 0.55; bin 14: accuracy 1, confidence 0.9.
    expected = 2 / 5 * abs(0.5 - 0.55) + 3 / 5 * abs(1.0 - 0.9)
    result = compute_metrics(logits, labels, [1000, 1000])
    assert result.ece == pytest.approx(100.0 * expected, abs=1e-5)


def test_confusion_matrix_rows_are_true_classes(result):
    expected = np.array([[2, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1], [1, 0, 0, 1]])
    assert result.confusion.dtype == np.int64
    np.testing.assert_array_equal(result.confusion, expected)


def test_a_label_outside_the_classes_names_the_label_and_the_class_count():
    with pytest.raises(ValueError, match=r"label 7 .*\[0, 4\)"):
        compute_metrics(torch.zeros(2, 4), torch.tensor([1, 7]), TRAIN_COUNTS)


def test_a_negative_label_is_rejected():
    with pytest.raises(ValueError, match="label -1"):
        compute_metrics(torch.zeros(2, 4), torch.tensor([-1, 0]), TRAIN_COUNTS)


def test_train_counts_of_the_wrong_length_name_both_lengths():
    with pytest.raises(ValueError, match=r"3 entries .* 4 classes"):
        compute_metrics(torch.zeros(2, 4), torch.tensor([0, 1]), [10, 10, 10])


def test_labels_must_match_the_number_of_logit_rows():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        compute_metrics(torch.zeros(3, 4), torch.tensor([0, 1]), TRAIN_COUNTS)


def test_to_dict_is_json_serialisable_with_the_confusion_as_nested_lists():
    result = compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), [500, 100, 20, 25])
    restored = json.loads(json.dumps(result.to_dict()))
    assert restored["confusion"] == result.confusion.tolist()
    assert restored["few"] is None
    assert restored["group_sizes"] == {"many": 1, "medium": 3, "few": 0}


def test_to_dict_can_leave_out_the_confusion_matrix(result):
    assert "confusion" not in result.to_dict(include_confusion=False)


def test_report_shows_each_group_with_its_class_count(result):
    report = result.format_report("toy")
    assert report.splitlines()[0] == "toy"
    assert "medium     50.00 %   (2 classes)" in report
    assert "few        50.00 %   (1 class)" in report


def test_report_shows_an_empty_group_as_n_a():
    result = compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), [500, 100, 20, 25])
    few_line = next(line for line in result.format_report("toy").splitlines() if line.strip().startswith("few"))
    assert "n/a" in few_line and "(0 classes)" in few_line


class TinyNet(nn.Module):
    """Conv + pooling + linear head: a small model whose logits depend on every pixel."""

    def __init__(self, num_classes=6):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.head = nn.Linear(5 * 8 * 8, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def synthetic_data(n=20, num_classes=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 8, generator=generator)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    return images, labels


COUNTS6 = [300, 150, 80, 40, 10, 3]


def reference_metrics(model, images, labels):
    model.eval()
    with torch.no_grad():
        return compute_metrics(model(images), labels, COUNTS6)


def assert_same_metrics(actual: EvalResult, expected: EvalResult):
    np.testing.assert_array_equal(actual.confusion, expected.confusion)
    assert actual.top5 == expected.top5
    assert actual.ece == pytest.approx(expected.ece, abs=1e-4)


def test_evaluate_equals_compute_metrics_on_the_models_logits():
    torch.manual_seed(0)
    model, (images, labels) = TinyNet(), synthetic_data()
    loader = DataLoader(TensorDataset(images, labels), batch_size=7)
    result = evaluate(model, loader, COUNTS6, progress=False)
    assert_same_metrics(result, reference_metrics(model, images, labels))
    assert result.num_images == 20


def test_evaluate_accepts_batches_with_images_and_labels_attributes():
    torch.manual_seed(0)
    model, (images, labels) = TinyNet(), synthetic_data()
    batches = [SimpleNamespace(images=images[i : i + 8], labels=labels[i : i + 8]) for i in range(0, 20, 8)]
    result = evaluate(model, batches, COUNTS6, progress=False)
    assert_same_metrics(result, reference_metrics(model, images, labels))


def test_flip_tta_on_mirror_symmetric_images_changes_nothing():
    torch.manual_seed(0)
    model, (half, labels) = TinyNet(), synthetic_data()
    images = torch.cat([half[..., :4], half[..., :4].flip(-1)], dim=-1)
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)
    plain = evaluate(model, loader, COUNTS6, progress=False)
    flipped = evaluate(model, loader, COUNTS6, flip=True, progress=False)
    assert_same_metrics(flipped, plain)


def test_flip_tta_averages_the_logits_of_the_image_and_its_horizontal_mirror():
    torch.manual_seed(0)
    model, (images, labels) = TinyNet(), synthetic_data(n=40)
    model.eval()
    with torch.no_grad():
        expected = compute_metrics((model(images) + model(images.flip(-1))) / 2, labels, COUNTS6)
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    assert_same_metrics(evaluate(model, loader, COUNTS6, flip=True, progress=False), expected)


class ModeRecorder(nn.Module):
    """Records the training flag and autocast state seen by each forward."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, torch.is_autocast_enabled("cpu"), torch.is_inference_mode_enabled()))
        return self.head(x.mean(dim=(2, 3)))


def tiny_loader():
    return DataLoader(TensorDataset(torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])), batch_size=3)


def test_evaluate_runs_in_eval_and_inference_mode_and_restores_training_mode():
    model = ModeRecorder().train()
    evaluate(model, tiny_loader(), [200, 50, 10, 5], progress=False)
    assert model.seen == [(False, False, True)] * 2
    assert model.training


def test_bf16_autocast_runs_the_forward_under_autocast_and_keeps_float32_metrics():
    model = ModeRecorder()
    result = evaluate(model, tiny_loader(), [200, 50, 10, 5], amp_dtype=torch.bfloat16, progress=False)
    assert all(autocast for _, autocast, _ in model.seen)
    assert 0.0 <= result.top1 <= 100.0


def test_evaluate_measures_throughput_and_compute_metrics_does_not(result):
    timed = evaluate(ModeRecorder(), tiny_loader(), [200, 50, 10, 5], progress=False)
    assert timed.images_per_sec > 0
    assert result.images_per_sec is None


def test_a_long_prediction_shows_a_progress_bar_named_by_its_description(capsys):
    predict(ModeRecorder(), tiny_loader(), desc="ce test")
    bar = capsys.readouterr().err
    assert "ce test" in bar and "2/2" in bar and "batch" in bar


def test_without_progress_prediction_prints_nothing(capsys):
    predict(ModeRecorder(), tiny_loader(), desc="ce test", progress=False)
    assert capsys.readouterr().err == ""


def test_evaluate_rejects_an_empty_loader():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(ModeRecorder(), [], [200, 50, 10, 5], progress=False)


@pytest.mark.parametrize("class_names", [None, ["a", "b", "c", "d"]])
def test_plot_per_class_writes_a_png(tmp_path, result, class_names):
    path = plot_per_class(result, TRAIN_COUNTS, tmp_path / "plots" / "per_class.png", class_names=class_names)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100


def test_plot_per_class_rejects_counts_of_the_wrong_length(tmp_path, result):
    with pytest.raises(ValueError, match=r"3 entries .* 4 classes"):
        plot_per_class(result, [10, 10, 10], tmp_path / "x.png")



def test_predict_keeps_the_penultimate_features_only_when_asked():
    model = ltzoo.create_model("resnet32_ce_cifar10_lt").eval()
    batch = [(torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2]))]
    assert predict(model, batch, progress=False).features is None
    outputs = predict(model, batch, progress=False, features=True)
    assert outputs.features.shape == (3, model.num_features)
    assert torch.allclose(model.get_classifier()(outputs.features), outputs.logits, atol=1e-5)


def test_the_per_class_figure_has_the_reliability_diagram_beside_it(tmp_path):
    result = compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), TRAIN_COUNTS)
    path = plot_per_class(result, TRAIN_COUNTS, tmp_path / "figure.png", title="model")
    with Image.open(path) as image:
        assert image.width > 1.5 * image.height  # the reliability diagram sits beside the bars
    assert sum(result.reliability["count"]) == len(LABELS)


def test_the_figure_titles_carry_the_overall_top1_and_the_ece(tmp_path, monkeypatch):
    result = compute_metrics(one_hot_logits(PREDICTIONS, 4), torch.tensor(LABELS), TRAIN_COUNTS)
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: saved.append(figure))
    plot_per_class(result, TRAIN_COUNTS, tmp_path / "figure.png", title="model")
    titles = [axis.get_title() for axis in saved[0].axes]
    assert f"model: top-1 {result.top1:.2f} %" in titles
    assert f"reliability: ECE {result.ece:.2f} % (15 bins)" in titles
