"""Split-file datasets for ImageNet-LT, iNaturalist 2018 and Places-LT (docs/methods/baselines.md §1.2).

Which lists a benchmark has is its row in ``ltzoo.benchmarks``. A split list has one ``relative/path label`` line
per image (the OLTR lists shipped by facebookresearch/classifier-balancing); images are read from
``image_root / relative/path``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, read_file

from ltzoo.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from ltzoo.data.sources import shared_data_dir

__all__ = [
    "ImageReadError",
    "SplitFileDataset",
    "SplitListError",
    "SplitListNotFoundError",
    "find_split_list",
    "read_split_list",
    "split_list_benchmark",
]

_NOT_SHARED = {"ImageNet_LT_train.txt", "iNaturalist18_train.txt"}


class SplitListError(ValueError):
    """A split list line that is malformed or has a label out of range; names the file and line."""


class SplitListNotFoundError(FileNotFoundError):
    """No split list file in any of the places looked; the message lists them and how to provide it."""


class ImageReadError(OSError):
    """An image named by a split list is missing or unreadable; names the image and the list line.

    Raised in a DataLoader worker, it reaches the main process re-made by torch from one string: "Caught
    ImageReadError in DataLoader worker process N. Original Traceback ...: ImageReadError: <message>"; the
    original one-line message is taken back from it, so the user sees that line, not the worker's traceback."""

    def __init__(self, message: str) -> None:
        if message.startswith(f"Caught {type(self).__name__} "):
            message = message.rstrip().splitlines()[-1].split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def read_split_list(path: str | Path, num_classes: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read ``relative/path label`` lines into (paths, int64 labels); labels must lie in [0, num_classes)."""
    paths, labels, _ = _read_entries(Path(path), num_classes)
    return paths, labels


def _read_entries(path: Path, num_classes: int | None) -> tuple[list[str], np.ndarray, list[int]]:
    """Parse a split list, keeping each entry's 1-based line number for error messages."""
    paths: list[str] = []
    labels: list[int] = []
    line_numbers: list[int] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise SplitListError(f"{path}, line {number}: expected 'relative/path label' with an integer "
                                     f"label, got {line.rstrip()!r}")
            label = int(fields[1])
            upper = num_classes if num_classes is not None else float("inf")
            if not 0 <= label < upper:
                allowed = f"[0, {num_classes})" if num_classes is not None else "non-negative"
                raise SplitListError(f"{path}, line {number}: label {label} is outside the allowed range "
                                     f"{allowed}; is this the list of the right benchmark?")
            paths.append(fields[0])
            labels.append(label)
            line_numbers.append(number)
    return paths, np.asarray(labels, dtype=np.int64), line_numbers


def find_split_list(benchmark: str, split: str, data_dir: str | Path | None = None) -> Path:
    """Locate a benchmark's list file: in ``data_dir`` (else $LTZOO_DATA), its ``<Folder>/`` or ``splits/<Folder>/``,
    then in the shared ``splits/<Folder>/``; the error lists every place looked.
    """
    info = split_list_benchmark(benchmark)
    if split not in info.split_files:
        raise ValueError(f"unknown split {split!r} for {benchmark}; expected one of {', '.join(info.split_files)}")
    filename = info.split_files[split]
    candidates = _split_list_candidates(info, filename, data_dir)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    places = "\n".join(f"  - {candidate}" for candidate in candidates)
    hint = (f" {filename} is not in the shared data: take it from facebookresearch/classifier-balancing "
            f"(data/{info.folder}/)." if filename in _NOT_SHARED else "")
    raise SplitListNotFoundError(f"{benchmark} {split} list {filename} not found. Looked in:\n"
                                 f"{places or '  - (no data_dir, LTZOO_DATA or shared folder)'}\n"
                                 f"Pass data_dir=<the folder holding it>, or set LTZOO_DATA to it.{hint}")


def _split_list_candidates(info: Benchmark, filename: str, data_dir: str | Path | None) -> list[Path]:
    """Where a list file may be, in search order."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    elif os.environ.get("LTZOO_DATA"):
        roots.append(Path(os.environ["LTZOO_DATA"]).expanduser())
    candidates = [folder / filename for root in roots
                  for folder in (root, root / info.folder, root / "splits" / info.folder)]
    shared = shared_data_dir()
    if shared is not None:
        candidates.append(shared / "splits" / info.folder / filename)
    return candidates


def split_list_benchmark(benchmark: str) -> Benchmark:
    """The row of a benchmark read from split lists, or a ValueError listing those."""
    if get_benchmark(benchmark).kind != "split_lists":
        listed = [name for name, row in BENCHMARKS.items() if row.kind == "split_lists"]
        raise ValueError(f"{benchmark} has no split lists (it is built from CIFAR); the benchmarks read from lists "
                         f"are {', '.join(listed)}")
    return BENCHMARKS[benchmark]


def decode_rgb(path: Path) -> Image.Image:
    """An image file as an RGB PIL image, decoded by torchvision (libjpeg-turbo / libpng: 1.5x the images/s of PIL's
    open + convert on 320-px JPEGs, the same pixels), so the per-image PIL transforms stay as they are. A file
    torchvision cannot decode goes through PIL, whose OSError names what is wrong with it."""
    try:
        pixels = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


class SplitFileDataset(torch.utils.data.Dataset):
    """Images listed in a split file: item i is (transform(RGB PIL image), label), decoded by `decode_rgb`."""

    def __init__(self, image_root: str | Path, list_file: str | Path, num_classes: int,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.image_root = Path(image_root)
        self.list_file = Path(list_file)
        self.num_classes = num_classes
        self.transform = transform
        self.paths, self.targets, self._line_numbers = _read_entries(self.list_file, num_classes)
        self.class_counts = np.bincount(self.targets, minlength=num_classes).astype(np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path = self.image_root / self.paths[index]
        try:
            image = decode_rgb(path)
        except OSError as error:
            raise ImageReadError(f"cannot read image {path} (listed in {self.list_file}, line "
                                 f"{self._line_numbers[index]}): {error}. Check image_root={self.image_root}"
                                 ) from None
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])
