"""Boxes: CMO's box table (docs/methods/baselines.md §6.3), the SaliencyMix box on a peak (§9,
docs/methods/smcl.md §6.3), masks and λ̂."""

import numpy as np
import pytest
import torch

from ltzoo.augment import box_masks, box_size, centred_boxes, kept_area, random_centres


@pytest.mark.parametrize(
    ("size", "lam", "centre", "box", "lam_hat"),
    [
        (32, 0.5, (16, 16), (5, 5, 27, 27), 0.52734375),
        (32, 0.5, (0, 0), (0, 0, 11, 11), 0.8818359375),
        (32, 0.3, (31, 5), (18, 0, 32, 18), 0.75390625),
        (32, 0.0, (15, 15), (0, 0, 31, 31), 0.0615234375),
        (224, 0.5, (112, 112), (33, 33, 191, 191), 1 - 158 * 158 / 224**2),
    ],
)
def test_cmo_box_table(size, lam, centre, box, lam_hat):
    boxes = centred_boxes(torch.tensor([centre]), size, size, lam)
    assert boxes.tolist() == [list(box)]
    assert kept_area(boxes, size, size).item() == pytest.approx(lam_hat, abs=1e-7)


def test_box_side_is_int_of_side_times_sqrt_one_minus_lambda():
    assert box_size(32, 32, 0.5) == (22, 22)
    assert box_size(32, 64, 0.3) == (26, 53)


def test_an_unclipped_box_is_twice_half_the_cut_wide():
    (x1, y1, x2, y2), = centred_boxes(torch.tensor([[16, 16]]), 32, 32, 0.3).tolist()  # cut 26 → 26 wide
    assert (x2 - x1, y2 - y1) == (26, 26)
    (x1, y1, x2, y2), = centred_boxes(torch.tensor([[16, 16]]), 32, 32, 0.5).tolist()  # cut 22 → 22 wide
    assert (x2 - x1, y2 - y1) == (22, 22)


@pytest.mark.parametrize(("peak", "box"), [((0, 0), (0, 0, 11, 11)), ((31, 31), (20, 20, 32, 32)),
                                           ((0, 31), (0, 20, 11, 32)), ((31, 0), (20, 0, 32, 11))])
def test_saliency_box_at_a_corner_peak_is_clipped_to_the_image(peak, box):
    assert centred_boxes(torch.tensor([peak]), 32, 32, 0.5).tolist() == [list(box)]


def test_boxes_centred_on_per_image_peaks_differ_per_image():
    boxes = centred_boxes(torch.tensor([[16, 16], [0, 0], [31, 5]]), 32, 32, 0.5)
    assert boxes.tolist() == [[5, 5, 27, 27], [0, 0, 11, 11], [20, 0, 32, 16]]
    assert kept_area(boxes, 32, 32).tolist() == [0.52734375, 0.8818359375, 1 - 12 * 16 / 1024]


def test_rows_are_the_first_spatial_axis_on_non_square_images():
    (x1, y1, x2, y2), = centred_boxes(torch.tensor([[2, 40]]), 16, 64, 0.75).tolist()  # cuts 8 × 32
    assert (x1, y1, x2, y2) == (0, 24, 6, 56)


def test_box_mask_is_true_exactly_inside_the_half_open_box():
    mask = box_masks(torch.tensor([[1, 2, 3, 5]]), 4, 6)
    expected = torch.zeros(1, 1, 4, 6, dtype=torch.bool)
    expected[0, 0, 1:3, 2:5] = True
    assert torch.equal(mask, expected)


def test_mask_area_matches_kept_area():
    boxes = centred_boxes(torch.tensor([[16, 16], [0, 0]]), 32, 32, 0.5)
    mask = box_masks(boxes, 32, 32)
    assert torch.equal(1.0 - mask.float().mean(dim=(1, 2, 3)), kept_area(boxes, 32, 32))


def test_random_centres_are_integers_in_range_and_seeded():
    centres = random_centres(1000, 32, 24, np.random.default_rng(0))
    assert centres.shape == (1000, 2) and centres.dtype == torch.long
    assert centres[:, 0].min() == 0 and centres[:, 0].max() == 31
    assert centres[:, 1].min() == 0 and centres[:, 1].max() == 23
    assert torch.equal(centres, random_centres(1000, 32, 24, np.random.default_rng(0)))


def test_lambda_outside_the_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="lam"):
        box_size(32, 32, 1.5)
