"""benchmarks/jpeg_pixel_error.py: the pixel error the CIFAR-10 model cards quote, on tiny synthetic images."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a folder of scripts beside the package
from benchmarks.jpeg_pixel_error import pixel_error  # noqa: E402


def test_identical_images_have_no_error_and_every_value_exact():
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    assert pixel_error(images, images.copy()) == {"images": 3, "mean_abs_error": 0.0,
                                                  "worst_image_mean_abs_error": 0.0, "exact_fraction": 1.0}


def test_error_is_absolute_in_255_steps_without_uint8_wrap_around():
    lossless = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    jpeg = lossless.copy()
    jpeg[0] = 255  # image 0: every value off by 255 (uint8 arithmetic would wrap to 1)
    jpeg[1, 0, 0, 0] = 12  # image 1: one value off by 12
    error = pixel_error(jpeg, lossless)
    assert error["mean_abs_error"] == (255 * 12 + 12) / 24
    assert error["worst_image_mean_abs_error"] == 255.0
    assert error["exact_fraction"] == 11 / 24
