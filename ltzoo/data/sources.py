"""Find and load the raw CIFAR-10/100 arrays, wherever the user keeps them (docs/design.md §7 "Data roots").

Roots are tried in order: an explicit ``root``; ``$LTZOO_DATA``; the shared folder ``../shared/data`` beside the
checkout; the default ``~/.cache/ltzoo/data`` (where ``download=True`` puts torchvision's files). Each root may hold
JPEG npz archives (``cifar10_train_jpeg.npz``, ...) or torchvision's layout (``cifar-10-batches-py/``,
``cifar-100-python/``), whose pickles are read only when every file has the official md5 (else the layout is
refused). Decoded JPEG archives are cached as ``.npy`` under ``~/.cache/ltzoo/decoded/`` (or ``$LTZOO_DECODED_CACHE``).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import check_integrity

from ltzoo.benchmarks import BENCHMARKS

__all__ = [
    "CIFAR_DATASETS",
    "CifarArrays",
    "DataFileError",
    "DatasetNotFoundError",
    "load_cifar",
    "shared_data_dir",
]

# the balanced CIFAR sets the CIFAR-LT benchmarks are drawn from
CIFAR_DATASETS: tuple[str, ...] = tuple(b.cifar for b in BENCHMARKS.values() if b.kind == "cifar_lt")

# beside the checkout: <checkout>/ltzoo/data/sources.py -> <checkout>/../shared/data
SHARED_DATA_DIR: Path = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_DATA_DIR: Path = Path.home() / ".cache" / "ltzoo" / "data"
# $LTZOO_DECODED_CACHE moves the decoded-archive cache (the test suite points it at a temporary folder)
DECODED_CACHE_DIR: Path = Path(os.environ.get("LTZOO_DECODED_CACHE") or Path.home() / ".cache" / "ltzoo" / "decoded")


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is in none of the places looked; the message lists them and how to fix it, in the
    Python API's terms; `explain` words the fix for another caller (the CLI's --data-dir, a config's data.root)."""

    def __init__(self, dataset: str, split: str, looked: list[str]) -> None:
        self.dataset, self.split, self.looked = dataset, split, looked
        super().__init__(self.explain("pass root=<folder>", "or pass download=True to fetch torchvision's copy"))

    def explain(self, root_option: str, download: str | None = None) -> str:
        """Every place looked, then the fixes: `root_option` names a data root the caller's way; `download` is
        the caller's way to fetch the data, where it has one."""
        places = "\n".join(f"  - {place}" for place in self.looked)
        folder = _TORCHVISION[self.dataset].base_folder
        return (
            f"{self.dataset} {self.split} split not found. Looked in:\n{places}\n"
            f"Provide it in one of these ways: {root_option} holding {folder}/ or "
            f"{self.dataset}_{self.split}_jpeg.npz; set LTZOO_DATA to such a folder"
            + (f"; {download}." if download else ".")
        )


class DataFileError(ValueError):
    """A data file that is there but cannot be used (truncated, a key or an image missing or unreadable, labels out
    of range); the message names the file and, where one is to blame, the image index."""


@dataclass
class CifarArrays:
    """One CIFAR split in memory: RGB images (N, 32, 32, 3) uint8, int64 labels, class names, where it came from."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str


_TORCHVISION = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def shared_data_dir() -> Path | None:
    """The workplace's shared data folder ``<checkout>/../shared/data``, or None where it does not exist."""
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None


def load_cifar(dataset: str, train: bool, root: str | Path | None = None, download: bool = False) -> CifarArrays:
    """Load the full CIFAR-10 or CIFAR-100 train or test split from the first root that holds it.

    An explicit ``root`` is the only place looked; otherwise ``$LTZOO_DATA``, the shared folder and
    ``~/.cache/ltzoo/data`` are tried in turn. ``download=True`` fetches torchvision's copy into ``root``
    (or ``$LTZOO_DATA``, or ``~/.cache/ltzoo/data``) when no root holds the data.
    """
    if dataset not in CIFAR_DATASETS:
        raise ValueError(f"unknown CIFAR dataset {dataset!r}; expected one of {', '.join(CIFAR_DATASETS)}")
    split = "train" if train else "test"
    looked: list[str] = []
    for candidate in _candidate_roots(root):
        found = _load_from_root(dataset, split, candidate, looked)
        if found is not None:
            return found
    if download:
        target = _download_root(root)
        try:
            _TORCHVISION[dataset](str(target), train=train, download=True)
        except (OSError, RuntimeError) as error:
            looked.append(f"download into {target} failed: {error}")
            raise DatasetNotFoundError(dataset, split, looked) from None
        found = _load_from_root(dataset, split, target, looked)
        if found is not None:
            return found
    raise DatasetNotFoundError(dataset, split, looked)


def _candidate_roots(root: str | Path | None) -> list[Path]:
    """The roots to try, in order: an explicit root alone, else $LTZOO_DATA, the shared folder, the default."""
    if root is not None:
        return [Path(root).expanduser()]
    roots = []
    if os.environ.get("LTZOO_DATA"):
        roots.append(Path(os.environ["LTZOO_DATA"]).expanduser())
    shared = shared_data_dir()
    if shared is not None:
        roots.append(shared)
    roots.append(DEFAULT_DATA_DIR)
    return roots


def _download_root(root: str | Path | None) -> Path:
    """Where ``download=True`` puts torchvision's files: the explicit root, $LTZOO_DATA, or the default."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("LTZOO_DATA"):
        return Path(os.environ["LTZOO_DATA"]).expanduser()
    return DEFAULT_DATA_DIR


def _load_from_root(dataset: str, split: str, root: Path, looked: list[str]) -> CifarArrays | None:
    """Load ``dataset``/``split`` from ``root`` in either format, or record what was missing and return None."""
    archive = root / f"{dataset}_{split}_jpeg.npz"
    if archive.is_file():
        return _load_jpeg_archive(archive)
    looked.append(f"{archive} (no such file)")
    reader = _TORCHVISION[dataset]
    folder = root / reader.base_folder
    needed = reader.train_list + reader.test_list + [[reader.meta["filename"], reader.meta["md5"]]]
    missing = [name for name, _ in needed if not (folder / name).is_file()]
    if missing:
        what = "no such folder" if not folder.is_dir() else f"missing {', '.join(missing)}"
        looked.append(f"{folder}/ (torchvision layout: {what})")
        return None
    altered = [name for name, md5 in needed if not check_integrity(str(folder / name), md5)]
    if altered:
        looked.append(f"{folder}/ (torchvision layout refused: {', '.join(altered)} differ from the official CIFAR "
                      "files' md5; these are pickles, read only when they are the official ones)")
        return None
    return _load_torchvision_folder(dataset, split, root)


def _load_torchvision_folder(dataset: str, split: str, root: Path) -> CifarArrays:
    """Read torchvision's CIFAR layout, whose files were just checked against the official md5s, with torchvision's
    own dataset class (it unpickles them, and checks the md5s again)."""
    data = _TORCHVISION[dataset](str(root), train=split == "train")
    return CifarArrays(
        images=np.ascontiguousarray(data.data, dtype=np.uint8),
        labels=np.asarray(data.targets, dtype=np.int64),
        class_names=list(data.classes),
        source=f"torchvision layout at {root / data.base_folder}",
    )


ARCHIVE_KEYS = ("jpeg", "offsets", "y", "class_names")


def _load_jpeg_archive(archive: Path) -> CifarArrays:
    """Load a JPEG npz archive (keys jpeg, offsets, y, class_names), decoding through the .npy cache; a damaged
    archive is a DataFileError naming it (and the image, for one that does not decode)."""
    try:
        with np.load(archive) as z:
            missing = [key for key in ARCHIVE_KEYS if key not in z.files]
            if missing:
                raise DataFileError(f"{archive} lacks the key(s) {missing}; a CIFAR archive holds {list(ARCHIVE_KEYS)}")
            labels = z["y"].astype(np.int64)
            class_names = [str(name) for name in z["class_names"]]
            offsets = z["offsets"]
            _check_layout(archive, labels, len(class_names), offsets)
            images = _cached_decode(archive, z, offsets)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as e:
        if isinstance(e, DataFileError):
            raise
        raise DataFileError(f"{archive} is not a readable npz archive ({e}); replace it with an intact copy") from None
    order = "grouped by class, not the canonical order; " if archive.name.endswith("_test_jpeg.npz") else ""
    return CifarArrays(
        images=images,
        labels=labels,
        class_names=class_names,
        source=f"shared JPEG archive (quality 75, lossy; {order}decoded with Pillow {PIL.__version__}) at {archive}",
    )


def _check_layout(archive: Path, labels: np.ndarray, num_classes: int, offsets: np.ndarray) -> None:
    """Labels within [0, classes) and one increasing offset more than there are labels, before anything decodes."""
    out_of_range = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise DataFileError(f"{archive}: label {int(labels[i])} of image {i} is outside [0, {num_classes}) "
                            f"({out_of_range.size} such labels)")
    if offsets.shape != (len(labels) + 1,) or np.any(np.diff(offsets) <= 0) or offsets[0] != 0:
        raise DataFileError(f"{archive}: offsets must be {len(labels) + 1} increasing byte positions from 0, one per "
                            "image and the end")


def _cached_decode(archive: Path, z: np.lib.npyio.NpzFile, offsets: np.ndarray) -> np.ndarray:
    """Decoded images of ``archive``, from the .npy cache keyed by name, size, mtime and Pillow version."""
    stat = archive.stat()
    key = f"{archive.stem}-{stat.st_size}-{stat.st_mtime_ns}-pillow{PIL.__version__}.npy"
    cached = DECODED_CACHE_DIR / key
    num_images = len(offsets) - 1
    if cached.is_file():
        try:
            images = np.load(cached)
        except (OSError, ValueError):
            images = None
        if images is not None and images.shape == (num_images, 32, 32, 3) and images.dtype == np.uint8:
            return images
    images = _decode_jpegs(archive, z["jpeg"], offsets)
    _atomic_save(cached, images)
    return images


def _decode_jpegs(archive: Path, buffer: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Decode image i = ``buffer[offsets[i]:offsets[i+1]]`` with Pillow into (N, 32, 32, 3) uint8 RGB."""
    if offsets[-1] > len(buffer):
        raise DataFileError(f"{archive}: the images end at byte {int(offsets[-1])} but jpeg holds {len(buffer)}")
    images = []
    for i, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        try:
            image = np.asarray(Image.open(io.BytesIO(buffer[start:stop].tobytes())).convert("RGB"))
        except (OSError, ValueError) as e:
            raise DataFileError(f"{archive}: image {i} does not decode ({e})") from None
        if image.shape != (32, 32, 3):
            raise DataFileError(f"{archive}: image {i} is {image.shape[1]}x{image.shape[0]}, not 32x32")
        images.append(image)
    return np.stack(images)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file and a rename, so readers never see half a file."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            np.save(tmp, array)
        os.replace(tmp_name, path)
    except OSError as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        warnings.warn(f"could not cache decoded images at {path} ({error}); they will be decoded again next time",
                      stacklevel=3)
