"""Saliency (docs/methods/baselines.md §8–§9, docs/methods/smcl.md §3.3): CAM and Grad-CAM exactness, the saliency
pass's BN hygiene, upsampling, normalisation, peaks, and OpenCV's fine-grained detector."""

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ltzoo
from ltzoo.augment import (
    class_activation_maps,
    grad_cam,
    model_saliency,
    normalize_maps,
    opencv_finegrained_saliency,
    peaks,
    saliency_forward,
    to_uint8_images,
    upsample,
)
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data.batch_transforms import Normalize
from ltzoo.models.base import LongTailClassifier


class TinyCamNet(LongTailClassifier):
    """conv + BN + ReLU → A (4 × h × w) → GAP → linear or cosine head over 3 classes."""

    def __init__(self, classifier: str = "linear", cosine_scale: float = 1.0) -> None:
        super().__init__(num_classes=3, classifier=classifier, cosine_scale=cosine_scale)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.num_features = 4
        self._init_classifier()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _images(n: int = 4, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _net(classifier: str = "linear", cosine_scale: float = 1.0) -> TinyCamNet:
    torch.manual_seed(0)
    return TinyCamNet(classifier, cosine_scale).eval()


LABELS = torch.tensor([0, 2, 1, 2])


def test_cam_of_gap_linear_is_the_weighted_sum_of_feature_channels():
    model = _net()
    feature_map = model.forward_features(_images())
    expected = torch.einsum("bk,bkhw->bhw", model.fc.weight[LABELS], feature_map)
    torch.testing.assert_close(class_activation_maps(feature_map, model.fc, LABELS), expected)



def test_cam_is_fp32_under_bf16_autocast():
    model = _net()
    feature_map = model.forward_features(_images()).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cam = class_activation_maps(feature_map, model.fc, LABELS)
    assert cam.dtype == torch.float32
    torch.testing.assert_close(cam, class_activation_maps(feature_map, model.fc, LABELS))

def test_cam_spatial_mean_plus_bias_is_the_logit():
    model = _net()
    images = _images()
    cam = model_saliency(model, images, LABELS, "cam")
    logits = model(images).gather(1, LABELS.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(cam.mean(dim=(1, 2)) + model.fc.bias[LABELS], logits)


def test_gradcam_of_a_linear_head_is_relu_cam_over_hw():
    model = _net()
    feature_map = model.forward_features(_images())
    cam = class_activation_maps(feature_map, model.fc, LABELS)
    torch.testing.assert_close(grad_cam(model, feature_map, LABELS), F.relu(cam) / 64)


def test_gradcam_of_a_normed_linear_head_matches_the_closed_form():
    scale = 30.0
    model = _net("cosine", cosine_scale=scale)
    feature_map = model.forward_features(_images()).detach()
    x = feature_map.mean(dim=(2, 3))
    x_hat = F.normalize(x, dim=1)
    w_hat = F.normalize(model.fc.weight, dim=0).t()[LABELS]  # Ŵ_c (B, K)
    z = (w_hat * x_hat).sum(1, keepdim=True)
    closed = F.relu(torch.einsum("bk,bkhw->bhw", w_hat - z * x_hat, feature_map))
    per_image = scale / (64 * x.norm(dim=1))  # the positive constant S/(hw‖x‖)
    torch.testing.assert_close(grad_cam(model, feature_map, LABELS), closed * per_image.view(-1, 1, 1))


def test_linear_and_normed_linear_with_proportional_weights_give_the_same_peak_and_sum_map():
    linear = _net()
    cosine = _net("cosine")
    class_scale = torch.tensor([0.5, 3.0, 7.0]).view(-1, 1)
    cosine.fc.weight.data = (linear.fc.weight.data * class_scale).t().contiguous()
    feature_map = linear.forward_features(_images(size=16))
    maps_linear = upsample(class_activation_maps(feature_map, linear.fc, LABELS), (32, 32))
    maps_cosine = upsample(class_activation_maps(feature_map, cosine.fc, LABELS), (32, 32))
    assert torch.equal(peaks(maps_linear), peaks(maps_cosine))
    torch.testing.assert_close(normalize_maps(maps_linear, "sum"), normalize_maps(maps_cosine, "sum"))


def test_cam_needs_a_linear_or_normed_linear_head():
    with pytest.raises(TypeError, match="Linear or NormedLinear"):
        class_activation_maps(torch.ones(1, 4, 2, 2), nn.Identity(), torch.tensor([0]))


def test_cam_target_pred_uses_the_predicted_class():
    model = _net()
    images = _images()
    predicted = model(images).argmax(1)
    torch.testing.assert_close(model_saliency(model, images, LABELS, "cam", target="pred"),
                               model_saliency(model, images, predicted, "cam"))


@pytest.fixture(scope="module")
def resnet32() -> LongTailClassifier:
    torch.manual_seed(0)
    return ltzoo.create_model("resnet32_ce_cifar10_lt").train()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["cam", "gradcam"])
def test_saliency_pass_leaves_the_state_dict_bit_identical(resnet32, kind):
    before = _state(resnet32)
    model_saliency(resnet32, _images(4, 32), torch.tensor([0, 1, 2, 3]), kind)
    after = resnet32.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in resnet32.parameters())


def test_saliency_pass_uses_batch_statistics_and_builds_no_graph(resnet32):
    images = _images(4, 32)
    out = saliency_forward(resnet32, images)
    assert out["feature_map"].grad_fn is None and not out["feature_map"].requires_grad
    reference = ltzoo.create_model("resnet32_ce_cifar10_lt")
    reference.load_state_dict(resnet32.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(out["feature_map"], reference.train().forward_features(images))
        assert not torch.allclose(out["feature_map"], reference.eval().forward_features(images))


def test_gradcam_back_propagates_through_the_head_only(resnet32):
    feature_map = saliency_forward(resnet32, _images(2, 32))["feature_map"]
    calls = []
    hook = resnet32.layer3.register_full_backward_hook(lambda *args: calls.append(args))
    try:
        grad_cam(resnet32, feature_map, torch.tensor([0, 1]))
    finally:
        hook.remove()
    assert calls == [] and all(p.grad is None for p in resnet32.parameters())


def test_the_saliency_pass_restores_running_statistic_tracking(resnet32):
    saliency_forward(resnet32, _images(2, 32))
    assert all(m.track_running_stats for m in resnet32.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("cell", [(0, 0), (3, 5), (7, 7), (6, 1)])
def test_a_single_hot_cell_peaks_inside_its_upsampled_cell(cell):
    row, col = cell
    cam = torch.zeros(1, 8, 8)
    cam[0, row, col] = 1.0
    (peak_row, peak_col), = peaks(upsample(cam, (32, 32))).tolist()
    assert 4 * row <= peak_row < 4 * row + 4 and 4 * col <= peak_col < 4 * col + 4


def test_argmax_ties_go_to_the_first_maximum_in_row_major_order():
    maps = torch.zeros(2, 4, 8)
    maps[0, 2, 1] = maps[0, 1, 7] = 5.0
    maps[1, 3, 3] = maps[1, 3, 2] = 5.0
    assert peaks(maps).tolist() == [[1, 7], [3, 2]]


def test_upsampling_is_bilinear_without_aligned_corners():
    up = upsample(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]), (4, 4))
    torch.testing.assert_close(up[0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    torch.testing.assert_close(up[0, :, 0], torch.tensor([0.0, 0.5, 1.5, 2.0]))


def test_minmax_normalisation_spans_zero_to_one():
    maps = normalize_maps(torch.randn(3, 5, 5) * 4 + 2, "minmax")
    torch.testing.assert_close(maps.flatten(1).min(1).values, torch.zeros(3))
    torch.testing.assert_close(maps.flatten(1).max(1).values, torch.ones(3))


def test_sum_normalisation_subtracts_the_min_and_sums_to_one():
    maps = normalize_maps(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), "sum")
    torch.testing.assert_close(maps, torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]) / 6)


def test_sum_normalisation_of_a_flat_map_is_uniform():
    torch.testing.assert_close(normalize_maps(torch.full((1, 2, 2), 7.0), "sum"), torch.full((1, 2, 2), 0.25))


def test_uint8_images_survive_normalize_and_back_exactly():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    normalised = Normalize(CIFAR_MEAN, CIFAR_STD)(images)
    assert torch.equal(to_uint8_images(normalised, CIFAR_MEAN, CIFAR_STD), images)


def _uint8_images(n: int = 3) -> torch.Tensor:
    images = torch.randint(0, 80, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    images[:, 0, 8:16, 20:28] = 250  # a bright red square
    return images


def test_opencv_saliency_shape_range_and_determinism():
    images = _uint8_images()
    maps = opencv_finegrained_saliency(images)
    assert maps.shape == (3, 32, 32) and maps.dtype == torch.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert torch.equal(maps, opencv_finegrained_saliency(images))


def test_opencv_saliency_runs_on_the_bgr_image():
    cv2 = pytest.importorskip("cv2")
    image = _uint8_images(1)
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    _, expected = detector.computeSaliency(np.ascontiguousarray(image[0].permute(1, 2, 0).numpy()[:, :, ::-1]))
    torch.testing.assert_close(opencv_finegrained_saliency(image)[0], torch.from_numpy(expected))


def test_opencv_saliency_needs_uint8_rgb_batches():
    with pytest.raises(ValueError, match="uint8 RGB"):
        opencv_finegrained_saliency(torch.zeros(1, 3, 8, 8))


def test_opencv_saliency_without_cv2_saliency_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))  # plain opencv-python: no cv2.saliency
    with pytest.raises(ImportError, match="opencv-contrib-python-headless"):
        opencv_finegrained_saliency(_uint8_images(1))
