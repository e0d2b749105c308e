"""LSM patch operators (docs/methods/lsm.md §3 steps 2, 4–6 and §8 tests 1–4)."""

import pytest
import torch

from ltzoo.augment.lsm import (
    dynamic_soft_label,
    num_kept_units,
    patchify,
    unit_mask,
    unit_pixel_mask,
    unit_scores,
    unpatchify,
)

TAIL_SCORES = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
FIRST_TWO = torch.tensor([[True, True, False, False]])


@pytest.mark.parametrize(("size", "p"), [(32, 4), (224, 28)])
def test_patchify_gives_64_units_and_round_trips_exactly(size: int, p: int) -> None:
    x = torch.randn(2, 3, size, size)
    units = patchify(x, p)
    assert units.shape == (2, 64, 3 * p * p)
    assert torch.equal(unpatchify(units, p, size, size), x)


def test_unit_j_is_the_block_at_raster_position_j_div_8_j_mod_8() -> None:
    x = torch.randn(1, 3, 32, 32)
    units = patchify(x, 4)
    for j in (0, 1, 7, 8, 29, 63):
        u, v = divmod(j, 8)
        assert torch.equal(units[0, j], x[0, :, 4 * u:4 * u + 4, 4 * v:4 * v + 4].reshape(-1))


def test_patchify_rejects_a_patch_size_that_does_not_divide_the_image() -> None:
    with pytest.raises(ValueError, match="must divide"):
        patchify(torch.zeros(1, 3, 32, 32), 5)


def mix(tail: torch.Tensor, head: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The pixel-mask form of the mixing, as the paired engine applies a region's mask (fill = paste)."""
    return torch.where(unit_pixel_mask(mask, 4, 8, 8), tail, head)


def test_mixing_units_0_and_1_takes_the_top_half_from_tail_and_bottom_half_from_head() -> None:
    tail, head = torch.full((1, 3, 8, 8), 1.0), torch.full((1, 3, 8, 8), 2.0)
    mixed = mix(tail, head, FIRST_TWO)
    assert torch.equal(mixed[..., :4, :], tail[..., :4, :])
    assert torch.equal(mixed[..., 4:, :], head[..., 4:, :])


def test_pixel_mask_mixing_equals_unit_space_mixing() -> None:
    tail, head = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    mask = torch.tensor([[True, True, False, False], [False, True, True, False], [True, False, False, True]])
    keep = mask.unsqueeze(-1)
    unit_space = unpatchify(torch.where(keep, patchify(tail, 4), patchify(head, 4)), 4, 8, 8)
    assert torch.equal(mix(tail, head, mask), unit_space)


def test_soft_label_with_reversed_head_saliency_is_half_half() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, torch.tensor([[0.1, 0.2, 0.3, 0.4]]), FIRST_TWO)
    assert (w_tail.item(), w_head.item()) == pytest.approx((0.5, 0.5))


def test_soft_label_with_uniform_head_saliency_favours_the_tail() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, torch.full((1, 4), 0.25), FIRST_TWO)
    assert (w_tail.item(), w_head.item()) == pytest.approx((0.583333, 0.416667), abs=1e-6)


def test_soft_label_gives_the_tail_less_than_its_area_when_the_heads_salient_units_survive() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, torch.tensor([[0.05, 0.05, 0.45, 0.45]]), FIRST_TWO)
    assert (w_tail.item(), w_head.item()) == pytest.approx((0.4375, 0.5625))


def test_area_head_weight_equals_uniform_head_saliency() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, None, FIRST_TWO, head_weight="area")
    assert (w_tail.item(), w_head.item()) == pytest.approx((0.583333, 0.416667), abs=1e-6)


def test_unnormalised_soft_label_is_the_raw_saliency_shares() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, torch.full((1, 4), 0.25), FIRST_TWO, normalise=False)
    assert (w_tail.item(), w_head.item()) == pytest.approx((0.7, 0.5))


@pytest.mark.parametrize("normalise", [True, False])
def test_all_zero_saliency_falls_back_to_the_area_weights(normalise: bool) -> None:
    w_head, w_tail = dynamic_soft_label(torch.zeros(1, 4), torch.zeros(1, 4), FIRST_TWO, normalise=normalise)
    assert (w_tail.item(), w_head.item()) == (0.5, 0.5)


def test_all_units_kept_gives_the_whole_label_to_the_tail() -> None:
    w_head, w_tail = dynamic_soft_label(TAIL_SCORES, torch.full((1, 4), 0.25), torch.ones(1, 4, dtype=torch.bool))
    assert (w_tail.item(), w_head.item()) == (1.0, 0.0)


@pytest.mark.parametrize(("lam", "kept"), [(0.5, 32), (0.0, 63), (1e-6, 63), (1.0, 1), (1 - 1e-6, 1)])
def test_number_of_kept_units_rounds_and_clamps(lam: float, kept: int) -> None:
    assert num_kept_units(lam, 64) == kept


def test_topk_mask_keeps_the_k_most_salient_units() -> None:
    scores = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    assert unit_mask(scores, 0.5).tolist() == [[False, True, False, True]]


def test_topk_mask_breaks_ties_towards_the_lower_index() -> None:
    scores = torch.tensor([[0.1, 0.3, 0.3, 0.3]])
    assert unit_mask(scores, 0.5).tolist() == [[False, True, True, False]]


def test_threshold_mask_keeps_units_at_or_above_the_mean_saliency() -> None:
    scores = torch.tensor([[0.4, 0.25, 0.2, 0.15], [0.7, 0.1, 0.1, 0.1]])
    assert unit_mask(scores, rule="threshold").tolist() == [[True, True, False, False], [True, False, False, False]]


def test_threshold_mask_on_a_uniform_map_is_clamped_to_n_minus_1_units() -> None:
    assert unit_mask(torch.full((1, 4), 0.25), rule="threshold").tolist() == [[True, True, True, False]]


def test_unit_scores_average_each_p_block_and_sum_to_one() -> None:
    saliency = torch.zeros(1, 8, 8)
    saliency[0, :4, :4] = 3.0
    saliency[0, 4:, 4:] = 1.0
    assert unit_scores(saliency, 4, (8, 8)).tolist() == [[0.75, 0.0, 0.0, 0.25]]


def test_unit_scores_upsample_bilinearly_to_the_input_size() -> None:
    saliency = torch.arange(4.0).view(1, 2, 2)
    upsampled = torch.nn.functional.interpolate(saliency[None], size=(8, 8), mode="bilinear", align_corners=False)
    expected = upsampled.view(1, 2, 4, 2, 4).mean(dim=(2, 4)).flatten(1)
    assert torch.allclose(unit_scores(saliency, 4, (8, 8)), expected / expected.sum())


def test_unit_scores_of_a_zero_map_are_uniform() -> None:
    assert unit_scores(torch.zeros(2, 8, 8), 4, (32, 32)).tolist() == [[1 / 64] * 64] * 2
