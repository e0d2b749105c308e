"""Split-file datasets (ImageNet-LT, iNat 2018, Places-LT): lists, lookup, images, errors and transforms
(docs/methods/baselines.md §1.2)."""

import os

import numpy as np
import pytest
import torch
from fixtures import lossless_refs, make_split_root, shared_file
from PIL import Image
from torchvision import transforms

from ltzoo import registry
from ltzoo.benchmarks import BENCHMARKS
from ltzoo.data import sources
from ltzoo.data.loader import image_loader
from ltzoo.data.splits import (
    ImageReadError,
    SplitFileDataset,
    SplitListError,
    SplitListNotFoundError,
    decode_rgb,
    find_split_list,
    read_split_list,
)
from ltzoo.data.transforms import benchmark_train_transform, eval_transform_from_cfg

SHARED_LISTS = [
    # benchmark, split, lines, per-class min, per-class max
    ("imagenet_lt", "val", 20000, 20, 20),
    ("imagenet_lt", "test", 50000, 50, 50),
    ("places_lt", "train", 62500, 5, 4980),
    ("places_lt", "val", 7300, 20, 20),
    ("places_lt", "test", 36500, 100, 100),
    ("inat2018", "test", 24426, 3, 3),
]


@pytest.fixture
def no_ltzoo_data(monkeypatch):
    monkeypatch.delenv("LTZOO_DATA", raising=False)


def test_benchmark_table():
    assert {name: info.num_classes for name, info in BENCHMARKS.items() if info.kind == "split_lists"} == {
        "imagenet_lt": 1000, "inat2018": 8142, "places_lt": 365}
    assert BENCHMARKS["inat2018"].split_files["test"] == "iNaturalist18_val.txt"
    assert BENCHMARKS["inat2018"].mean == (0.466, 0.471, 0.380)
    assert BENCHMARKS["places_lt"].std == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("benchmark, split, lines, low, high", SHARED_LISTS)
def test_shared_lists_have_the_documented_sizes(no_ltzoo_data, benchmark, split, lines, low, high):
    info = BENCHMARKS[benchmark]
    shared_file(f"splits/{info.folder}/{info.split_files[split]}")
    num_classes = info.num_classes
    paths, labels = read_split_list(find_split_list(benchmark, split), num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    assert len(paths) == lines and labels.dtype == np.int64
    assert counts.min() == low and counts.max() == high


def test_a_list_in_data_dir_wins_over_the_shared_one(tmp_path, no_ltzoo_data):
    (tmp_path / "Places_LT").mkdir()
    own = tmp_path / "Places_LT" / "Places_LT_val.txt"
    own.write_text("val/a.jpg 0\n")
    assert find_split_list("places_lt", "val", data_dir=tmp_path) == own


def test_ltzoo_data_is_searched_when_no_data_dir_is_given(tmp_path, monkeypatch):
    own = tmp_path / "ImageNet_LT_train.txt"
    own.write_text("train/a.JPEG 0\n")
    monkeypatch.setenv("LTZOO_DATA", str(tmp_path))
    assert find_split_list("imagenet_lt", "train") == own


def test_a_missing_list_names_every_place_looked_and_where_to_get_it(tmp_path, no_ltzoo_data):
    with pytest.raises(SplitListNotFoundError) as raised:
        find_split_list("imagenet_lt", "train", data_dir=tmp_path)
    message = str(raised.value)
    for place in (tmp_path / "ImageNet_LT_train.txt", tmp_path / "ImageNet_LT" / "ImageNet_LT_train.txt",
                  tmp_path / "splits" / "ImageNet_LT" / "ImageNet_LT_train.txt"):
        assert str(place) in message
    assert "classifier-balancing" in message and "LTZOO_DATA" in message


def test_an_unknown_benchmark_or_split_is_rejected():
    with pytest.raises(ValueError, match="imagenet_lt, inat2018, places_lt"):
        find_split_list("cifar10_lt", "train")
    with pytest.raises(ValueError, match="train, val, test"):
        find_split_list("places_lt", "holdout")


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    list_file = tmp_path / "list.txt"
    list_file.write_text("a.jpg 0\nb.jpg\n")
    with pytest.raises(SplitListError, match=r"list\.txt, line 2: expected 'relative/path label'"):
        read_split_list(list_file)


def test_a_label_out_of_range_names_the_file_line_and_range(tmp_path):
    list_file = tmp_path / "list.txt"
    list_file.write_text("a.jpg 0\nb.jpg 365\n")
    with pytest.raises(SplitListError, match=r"list\.txt, line 2: label 365 is outside the allowed range \[0, 365\)"):
        read_split_list(list_file, 365)


def test_split_file_dataset_reads_rgb_images_and_counts(tmp_path):
    image_root, list_file = make_split_root(tmp_path)
    dataset = SplitFileDataset(image_root, list_file, num_classes=4)
    assert len(dataset) == 6
    np.testing.assert_array_equal(dataset.targets, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(dataset.class_counts, [3, 2, 1, 0])
    image, label = dataset[5]  # stored as grayscale
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32) and label == 2


def test_split_file_dataset_applies_the_transform_in_a_dataloader(tmp_path):
    image_root, list_file = make_split_root(tmp_path)
    dataset = SplitFileDataset(image_root, list_file, num_classes=3, transform=transforms.ToTensor())
    images, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=6)))
    assert images.shape == (6, 3, 32, 32) and labels.tolist() == [0, 0, 0, 1, 1, 2]


def _tensor_and_decoding_pid(image: Image.Image) -> tuple[torch.Tensor, int]:
    return transforms.functional.to_tensor(image), os.getpid()


def test_the_training_loader_decodes_in_workers_that_live_across_epochs(tmp_path):
    image_root, list_file = make_split_root(tmp_path)
    dataset = SplitFileDataset(image_root, list_file, num_classes=3, transform=_tensor_and_decoding_pid)
    loader = image_loader(dataset, batch_size=3, num_workers=2)
    epochs = [list(loader) for _ in range(2)]
    for epoch in epochs:
        assert sorted(torch.cat([labels for _, labels in epoch]).tolist()) == [0, 0, 0, 1, 1, 2]
    decoders = [{pid for (_, pids), _ in epoch for pid in pids.tolist()} for epoch in epochs]
    assert len(decoders[0]) == 2 and os.getpid() not in decoders[0]
    assert decoders[1] == decoders[0]  # the same two processes: no re-spawn per epoch


def test_the_training_loader_pins_host_memory_only_on_the_way_to_a_cuda_device(tmp_path):
    dataset = SplitFileDataset(*make_split_root(tmp_path), num_classes=3)
    assert image_loader(dataset, 3, 0, device="cuda").pin_memory
    assert not image_loader(dataset, 3, 0, device="cpu").pin_memory


def test_a_missing_image_names_its_path_and_list_line(tmp_path):
    image_root, list_file = make_split_root(tmp_path)
    (image_root / "train/class_1/0004.png").unlink()
    dataset = SplitFileDataset(image_root, list_file, num_classes=3)
    with pytest.raises(ImageReadError, match=r"train/class_1/0004\.png \(listed in .*Tiny_LT_train\.txt, line 5\)"):
        dataset[4]


def test_an_unreadable_image_names_its_path(tmp_path):
    image_root, list_file = make_split_root(tmp_path)
    (image_root / "train/class_0/0000.png").write_bytes(b"not an image")
    dataset = SplitFileDataset(image_root, list_file, num_classes=3)
    with pytest.raises(ImageReadError, match=str(image_root / "train/class_0/0000.png")):
        dataset[0]


def test_with_no_place_to_look_the_error_says_so(tmp_path, monkeypatch, no_ltzoo_data):
    monkeypatch.setattr(sources, "SHARED_DATA_DIR", tmp_path / "absent")
    with pytest.raises(SplitListNotFoundError, match="no data_dir, LTZOO_DATA or shared folder"):
        find_split_list("places_lt", "val")


@pytest.mark.parametrize("benchmark, jitter", [("imagenet_lt", True), ("places_lt", True), ("inat2018", False)])
def test_train_transform_crops_flips_and_jitters_per_benchmark(benchmark, jitter):
    pipeline = benchmark_train_transform(benchmark)
    kinds = [type(step) for step in pipeline.transforms]
    assert kinds[:2] == [transforms.RandomResizedCrop, transforms.RandomHorizontalFlip]
    assert (transforms.ColorJitter in kinds) == jitter
    normalize = pipeline.transforms[-1]
    assert tuple(normalize.mean) == BENCHMARKS[benchmark].mean
    assert pipeline(Image.new("RGB", (300, 200))).shape == (3, 224, 224)


def test_the_large_scale_eval_transform_resizes_to_256_and_center_crops_224():
    pipeline = eval_transform_from_cfg(registry.get_pretrained_cfg("resnet50_ce_imagenet_lt"))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    expected = transforms.functional.center_crop(transforms.functional.resize(image, 256), 224)
    mean, std = torch.tensor(BENCHMARKS["imagenet_lt"].mean), torch.tensor(BENCHMARKS["imagenet_lt"].std)
    normalized = (transforms.functional.to_tensor(expected) - mean[:, None, None]) / std[:, None, None]
    torch.testing.assert_close(pipeline(image), normalized)


def test_cfg_eval_transform_on_32px_cifar_is_to_tensor_and_normalize():
    cfg = {"input_size": (3, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear",
           "mean": (0.4914, 0.4822, 0.4465), "std": (0.2023, 0.1994, 0.2010)}
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    expected = transforms.Normalize(cfg["mean"], cfg["std"])(transforms.ToTensor()(image))
    assert torch.equal(eval_transform_from_cfg(cfg)(image), expected)


def test_cfg_eval_transform_uses_crop_pct_and_interpolation():
    cfg = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic",
           "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    resize, crop = eval_transform_from_cfg(cfg).transforms[:2]
    assert resize.size == 256 and resize.interpolation == transforms.InterpolationMode.BICUBIC
    assert crop.size == (224, 224)


def test_cfg_eval_transform_names_missing_fields():
    with pytest.raises(ValueError, match="pretrained_cfg lacks crop_pct, interpolation"):
        eval_transform_from_cfg({"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3})


@pytest.mark.parametrize(("mode", "suffix"), [("RGB", ".jpg"), ("L", ".jpg"), ("RGB", ".png"), ("L", ".png"),
                                              ("P", ".png"), ("RGBA", ".png")])
def test_torchvision_decoding_gives_pils_rgb_pixels(tmp_path, mode: str, suffix: str):
    image = Image.fromarray(lossless_refs()["cifar10_test_first20_x"][3]).resize((200, 150), Image.BICUBIC)
    path = tmp_path / f"image{suffix}"
    image.convert(mode).save(path)
    with Image.open(path) as opened:
        expected = np.asarray(opened.convert("RGB"))
    assert np.array_equal(np.asarray(decode_rgb(path)), expected)


def test_a_file_torchvision_cannot_decode_fails_with_pils_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(OSError, match="cannot identify image file"):
        decode_rgb(tmp_path / "broken.jpg")
