"""The `ltzoo cam` helper: CAM overlays with the SMCL box, written to PNG."""

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from PIL import Image

import ltzoo
from ltzoo.augment import centred_boxes, model_saliency, peaks, upsample
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.cam_overlay import cifar_test_images, load_image_files, overlay_figure, save_cam_overlays
from ltzoo.data.batch_transforms import Normalize


def _images(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_the_box_is_drawn_over_rows_x1_x2_and_columns_y1_y2():
    figure = overlay_figure(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32)), box=(4, 10, 20, 30))
    (rectangle,) = [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]
    assert rectangle.get_xy() == (9.5, 3.5)
    assert (rectangle.get_width(), rectangle.get_height()) == (20, 16)


def test_the_peak_is_marked_at_the_cam_maximum():
    cam = np.zeros((32, 32))
    cam[5, 27] = 1.0
    figure = overlay_figure(np.zeros((32, 32, 3), np.uint8), cam)
    (marker,) = figure.axes[0].lines
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (27, 5)


@pytest.fixture(scope="module")
def resnet32():
    torch.manual_seed(0)
    return ltzoo.create_model("resnet32_ce_cifar10_lt").eval()


def test_one_png_per_image_is_written(resnet32, tmp_path):
    paths = save_cam_overlays(resnet32, _images(), torch.tensor([3, 7]), CIFAR_MEAN, CIFAR_STD, tmp_path,
                              class_names=[f"class{k}" for k in range(10)])
    assert paths == [tmp_path / "cam_0.png", tmp_path / "cam_1.png"]
    assert all(Image.open(p).format == "PNG" and Image.open(p).size == (320, 340) for p in paths)


def test_the_drawn_box_is_the_smcl_box_on_the_cam_peak(resnet32, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr("ltzoo.cam_overlay.overlay_figure",
                        lambda image, cam, box, title: drawn.append(box) or overlay_figure(image, cam, box, title))
    images, labels = _images(), torch.tensor([3, 7])
    save_cam_overlays(resnet32, images, labels, CIFAR_MEAN, CIFAR_STD, tmp_path, lam=0.3)
    maps = upsample(model_saliency(resnet32, Normalize(CIFAR_MEAN, CIFAR_STD)(images), labels), (32, 32))
    assert drawn == centred_boxes(peaks(maps), 32, 32, 0.3).tolist()


def test_image_files_load_as_uint8_rgb_at_the_input_size(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60, 4), 200, np.uint8)).save(path)  # RGBA, not 32 × 32
    images = load_image_files([path, path], (32, 32))
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8 and (images == 200).all()


def test_without_labels_the_cam_of_the_predicted_class_is_drawn(resnet32, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr("ltzoo.cam_overlay.overlay_figure",
                        lambda image, cam, box, title: drawn.append(box) or overlay_figure(image, cam, box, title))
    images = _images()
    save_cam_overlays(resnet32, images, None, CIFAR_MEAN, CIFAR_STD, tmp_path)
    normalised = Normalize(CIFAR_MEAN, CIFAR_STD)(images)
    with torch.no_grad():
        predicted = resnet32(normalised).argmax(1)
    maps = upsample(model_saliency(resnet32, normalised, predicted), (32, 32))
    assert drawn == centred_boxes(peaks(maps), 32, 32, 0.5).tolist()


def test_benchmark_test_images_are_for_cifar_lt_entries_only():
    with pytest.raises(ValueError, match="image files"):
        cifar_test_images("imagenet_lt", [0])
