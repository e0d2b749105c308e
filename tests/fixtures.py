"""Builders of tiny on-disk fixtures from real images: CIFAR archives and a split-file root."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltzoo.data.sources import shared_data_dir

CIFAR100_FINE_LABEL_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]
CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


SHARED_DATA = shared_data_dir()  # resolved at import, so tests that hide the shared folder still reach the refs


def shared_file(name: str) -> Path:
    """A file of the shared data folder; skips the test where this checkout has no shared data."""
    if SHARED_DATA is None or not (SHARED_DATA / name).is_file():
        pytest.skip(f"shared data file {name} is not available beside this checkout")
    return SHARED_DATA / name


def lossless_refs() -> dict[str, np.ndarray]:
    """The bit-exact CIFAR reference images and labels of the shared ``cifar_lossless_refs.npz``."""
    with np.load(shared_file("cifar_lossless_refs.npz")) as refs:
        return {key: refs[key] for key in refs.files}


def _lossless_archive(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> None:
    """An archive in the shared JPEG-archive format (keys jpeg, offsets, y, class_names) holding lossless PNGs, which
    the reader decodes as it does JPEGs: the real pixels, bit-exact."""
    blobs = []
    for image in images:
        out = io.BytesIO()
        Image.fromarray(image).save(out, format="PNG")
        blobs.append(np.frombuffer(out.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(blob) for blob in blobs])]).astype(np.int64)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=offsets, y=np.asarray(labels, dtype=np.int64),
             class_names=np.array(class_names))


def make_cifar100_root(root: Path) -> Path:
    """``root`` holding the 20 real CIFAR-100 test images (fine labels) as both the train and the test archive."""
    refs = lossless_refs()
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        _lossless_archive(root / f"cifar100_{split}_jpeg.npz", refs["cifar100_test_first20_x"],
                          refs["cifar100_test_first20_fine_y"], CIFAR100_FINE_LABEL_NAMES)
    return root


def make_cifar10_root(root: Path) -> Path:
    """``root`` holding the 20 real CIFAR-10 test images as both the train and the test archive."""
    refs = lossless_refs()
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        _lossless_archive(root / f"cifar10_{split}_jpeg.npz", refs["cifar10_test_first20_x"],
                          refs["cifar10_test_first20_y"], CIFAR10_LABEL_NAMES)
    return root


def make_split_root(root: Path) -> tuple[Path, Path]:
    """An image root with 6 real CIFAR-10 images (PNG, one grayscale) in 3 classes, and its list file."""
    refs = lossless_refs()
    images, labels = refs["cifar10_test_first20_x"][:6], [0, 0, 0, 1, 1, 2]
    image_root = root / "images"
    lines = []
    for i, (image, label) in enumerate(zip(images, labels)):
        relative = f"train/class_{label}/{i:04d}.png"
        (image_root / relative).parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        (picture.convert("L") if i == 5 else picture).save(image_root / relative)
        lines.append(f"{relative} {label}\n")
    list_file = root / "Tiny_LT_train.txt"
    list_file.write_text("".join(lines))
    return image_root, list_file


def make_cifar10_test_subset(root: Path, per_class: int) -> Path:
    """``root`` whose CIFAR-10 test archive is the first ``per_class`` shared CIFAR-10 test images of each class
    (real images, a balanced set, stored lossless); the train archive repeats it, since only the test split is read."""
    from ltzoo.data.sources import load_cifar

    test = load_cifar("cifar10", train=False, root=shared_file("cifar10_test_jpeg.npz").parent)
    kept = np.concatenate([np.flatnonzero(test.labels == cls)[:per_class] for cls in range(10)])
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        _lossless_archive(root / f"cifar10_{split}_jpeg.npz", test.images[kept], test.labels[kept],
                          CIFAR10_LABEL_NAMES)
    return root
