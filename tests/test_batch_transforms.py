"""Batched augmentations (ltzoo.augment) and their plumbing (ltzoo.data.batch_transforms): shapes, identities,
per-image randomness and agreement with torchvision kernels."""

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ltzoo.augment import autoaugment, blur, colour, crops, randaugment, views
from ltzoo.benchmarks import CIFAR_MEAN, CIFAR_STD
from ltzoo.data import batch_transforms as bt


def _images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _crops_of_padded(image: torch.Tensor, size: int, padding: int) -> list[torch.Tensor]:
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    span = padded.shape[-1] - size + 1
    crops = [padded[:, i : i + size, j : j + size] for i in range(span) for j in range(span)]
    return crops + [crop.flip(-1) for crop in crops]


def test_random_crop_flip_output_shape_and_dtype():
    out = crops.RandomCropFlip(32, padding=4)(_images(5), _gen())
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.uint8


def test_random_crop_flip_without_padding_or_flip_is_identity():
    x = _images()
    assert torch.equal(crops.RandomCropFlip(32, padding=0, flip_p=0.0)(x, _gen()), x)


def test_random_crop_flip_outputs_are_crops_of_the_zero_padded_input():
    x = _images(4, size=12)
    out = crops.RandomCropFlip(12, padding=3)(x, _gen())
    for image, result in zip(x, out):
        assert any(torch.equal(result, crop) for crop in _crops_of_padded(image, 12, 3))


def test_random_crop_flip_produces_both_flip_states():
    x = _images(1, size=8).expand(64, -1, -1, -1)
    out = crops.RandomCropFlip(8, padding=0)(x, _gen())
    flipped = torch.tensor([torch.equal(o, x[0].flip(-1)) for o in out])
    assert flipped.any() and not flipped.all()


def test_random_crop_flip_draws_a_different_crop_per_image():
    x = _images(1).expand(16, -1, -1, -1)
    out = crops.RandomCropFlip(32, padding=4, flip_p=0.0)(x, _gen())
    assert len({o.numpy().tobytes() for o in out}) > 8


def test_same_generator_seed_gives_the_same_batch():
    x = _images()
    transform = views.cifar_contrastive_transform()
    assert torch.equal(transform(x, _gen(3)), transform(x, _gen(3)))
    assert not torch.equal(transform(x, _gen(3)), transform(x, _gen(4)))


def test_random_horizontal_flip_flips_each_image_or_leaves_it():
    x = _images(32)
    out = crops.RandomHorizontalFlip(0.5)(x, _gen())
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_random_resized_crop_output_size():
    out = crops.RandomResizedCrop(20, scale=(0.2, 1.0))(_images(4), _gen())
    assert out.shape == (4, 3, 20, 20) and out.dtype == torch.uint8


def test_random_resized_crop_of_whole_square_image_is_identity():
    x = _images()
    assert torch.equal(crops.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, _gen()), x)


def test_resized_crop_matches_torchvision_antialiased_bilinear():
    x = _images(6).float()
    top, left, height, width = crops.sample_resized_crop_boxes(6, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), _gen())
    for size in (32, 12):
        ours = crops.resized_crop(x, top, left, height, width, size)
        boxes = zip(top.tolist(), left.tolist(), height.tolist(), width.tolist())
        reference = torch.stack(
            [TF.resized_crop(image, *box, [size, size], antialias=True) for image, box in zip(x, boxes)]
        )
        torch.testing.assert_close(ours, reference, atol=1e-3, rtol=0)


def test_resized_crop_boxes_stay_inside_the_image_and_respect_the_scale():
    top, left, height, width = crops.sample_resized_crop_boxes(500, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), _gen())
    assert (top >= 0).all() and (left >= 0).all() and (top + height <= 32).all() and (left + width <= 32).all()
    assert (height * width >= 0.15 * 32 * 32).all()


def test_color_jitter_with_zero_strengths_is_identity():
    x = _images()
    assert torch.equal(colour.ColorJitter(0.0, 0.0, 0.0, 0.0)(x, _gen()), x)


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (colour.adjust_brightness, TF.adjust_brightness),
        (colour.adjust_contrast, TF.adjust_contrast),
        (colour.adjust_saturation, TF.adjust_saturation),
        (colour.adjust_hue, TF.adjust_hue),
    ],
)
def test_color_ops_with_per_image_factors_match_torchvision_per_image(ours, reference):
    x = _images(6)
    is_hue = reference is TF.adjust_hue
    factors = torch.linspace(-0.1, 0.1, 6) if is_hue else torch.tensor([0.6, 0.9, 1.0, 1.2, 1.4, 0.75])
    expected = torch.stack([reference(x[i], float(factors[i])) for i in range(6)])
    assert (ours(x, factors).int() - expected.int()).abs().max() <= 1


def test_color_jitter_changes_images_and_keeps_dtype():
    x = _images()
    out = colour.ColorJitter(0.4, 0.4, 0.4, 0.1)(x, _gen())
    assert out.dtype == torch.uint8 and out.shape == x.shape and not torch.equal(out, x)


def test_random_grayscale_outputs_equal_channels():
    out = colour.RandomGrayscale(1.0)(_images(), _gen())
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_random_grayscale_with_zero_probability_is_identity():
    x = _images()
    assert torch.equal(colour.RandomGrayscale(0.0)(x, _gen()), x)


def test_gaussian_blur_default_kernel_covers_three_sigma():
    assert blur.GaussianBlur(0.5, sigma=(0.1, 2.0)).kernel_size == 13


def test_gaussian_blur_matches_torchvision_away_from_the_border():
    x = torch.randint(0, 256, (3, 3, 20, 28), dtype=torch.uint8, generator=_gen())
    sigma = torch.tensor([0.5, 1.0, 2.0])
    reference = torch.stack([TF.gaussian_blur(x[i].float(), [13, 13], [float(sigma[i])] * 2) for i in range(3)])
    ours = blur._gaussian_blur(x, sigma, 13).float()
    assert (ours - reference)[..., 6:-6, 6:-6].abs().max() <= 0.5 + 1e-3


def test_gaussian_blur_keeps_a_constant_image_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(blur.GaussianBlur(1.0)(flat, _gen()), flat)
    noise = _images(2, size=16)
    assert blur.GaussianBlur(1.0, sigma=(1.5, 2.0))(noise, _gen()).float().std() < noise.float().std() / 2


def test_normalize_matches_torchvision_on_float_and_uint8_input():
    x = _images()
    reference = v2.Normalize(CIFAR_MEAN, CIFAR_STD)(x.float() / 255.0)
    normalize = bt.Normalize(CIFAR_MEAN, CIFAR_STD)
    torch.testing.assert_close(normalize(x), reference)
    torch.testing.assert_close(normalize(x.float() / 255.0), reference)


def test_normalize_rejects_the_wrong_channel_count():
    with pytest.raises(ValueError, match="channels"):
        bt.Normalize(CIFAR_MEAN, CIFAR_STD)(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_transforms_reject_non_uint8_batches():
    with pytest.raises(TypeError, match="uint8"):
        crops.RandomCropFlip()(torch.zeros(2, 3, 32, 32), _gen())


def test_autoaugment_policy_is_torchvision_cifar10_policy():
    torchvision_policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies
    assert [tuple(sub) for sub in torchvision_policy] == list(autoaugment._CIFAR10_POLICY)


@pytest.mark.parametrize("op", sorted(autoaugment._AUTOAUGMENT_OPS))
def test_autoaugment_ops_on_a_group_act_on_each_image_alone(op):
    x, magnitude = _images(4), 4.0 if op == "Posterize" else 0.3
    batched = autoaugment._AUTOAUGMENT_OPS[op](x, magnitude, [128.0])
    for i in range(4):
        assert torch.equal(batched[i], autoaugment._AUTOAUGMENT_OPS[op](x[i : i + 1], magnitude, [128.0])[0])


@pytest.mark.parametrize("transform", [autoaugment.AutoAugmentCIFAR10(fill=128), randaugment.RandAugment(2, 10, 0.5)])
def test_auto_and_rand_augment_keep_dtype_and_shape_and_change_images(transform):
    x = _images(32)
    out = transform(x, _gen())
    assert out.dtype == torch.uint8 and out.shape == x.shape
    changed = torch.tensor([not torch.equal(o, i) for o, i in zip(out, x)])
    assert changed.float().mean() > 0.3


@pytest.mark.parametrize("op", ["Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"])
def test_rand_augment_geometric_ops_at_level_zero_are_identity(op):
    x = _images(3)
    zeros, signs = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    assert torch.equal(randaugment._RAND_AUGMENT_OPS[op](x, zeros, signs, torch.full((3,), 128.0)), x)


def test_rand_augment_translation_moves_content_and_fills_with_grey():
    x = _images(1, size=10)
    out = randaugment._RAND_AUGMENT_OPS["TranslateXRel"](
        x, torch.tensor([10.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), torch.full((3,), 128.0)
    )
    # level 10 shifts by 0.45 * 10 = 4.5 px: output column j samples input column j + 4.5
    assert (out[0, :, :, -4:] == 128).all()
    expected = (x[0, :, :, 4].float() + x[0, :, :, 5].float()) / 2
    assert (out[0, :, :, 0].float() - expected).abs().max() <= 0.5


def test_multiview_returns_one_tensor_per_view():
    contrastive = views.cifar_contrastive_transform()
    multi_view = views.MultiView((views.cifar_autoaugment_transform(), contrastive, contrastive))
    out = multi_view(_images(4), _gen())
    assert len(out) == 3 and all(v.shape == (4, 3, 32, 32) and v.dtype == torch.float32 for v in out)
    assert not torch.equal(out[1], out[2])


def test_cifar_eval_transform_only_normalises():
    x = _images()
    torch.testing.assert_close(bt.cifar_eval_transform()(x, _gen()), bt.Normalize(CIFAR_MEAN, CIFAR_STD)(x))


def test_cifar_train_transform_is_crop_flip_then_normalise():
    x = _images()
    expected = bt.Normalize(CIFAR_MEAN, CIFAR_STD)(crops.RandomCropFlip(32, 4)(x, _gen(5)))
    torch.testing.assert_close(views.cifar_train_transform()(x, _gen(5)), expected)
