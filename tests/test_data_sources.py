"""Loading raw CIFAR arrays: the shared JPEG archives, torchvision's layout, the root order and the decode cache."""

import hashlib
import io
import os
import pickle

import numpy as np
import PIL
import pytest
from fixtures import lossless_refs, make_cifar10_root, make_cifar100_root, shared_file
from PIL import Image

from ltzoo.data import sources
from ltzoo.data.sources import DatasetNotFoundError, load_cifar


@pytest.fixture
def isolated_roots(tmp_path, monkeypatch):
    """No LTZOO_DATA, no shared folder, and an empty default data folder: only what a test provides exists."""
    monkeypatch.delenv("LTZOO_DATA", raising=False)
    monkeypatch.setattr(sources, "SHARED_DATA_DIR", tmp_path / "no-shared")
    monkeypatch.setattr(sources, "DEFAULT_DATA_DIR", tmp_path / "default")
    return tmp_path


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Decoded images cached under tmp_path, not in the user's ~/.cache."""
    monkeypatch.setattr(sources, "DECODED_CACHE_DIR", tmp_path / "decoded")


def _jpeg_archive(path, images, labels):
    """Write a JPEG npz archive in the shared format (keys jpeg, offsets, y, class_names)."""
    blobs = []
    for image in images:
        out = io.BytesIO()
        Image.fromarray(image).save(out, format="JPEG", quality=75)
        blobs.append(np.frombuffer(out.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(blob) for blob in blobs])]).astype(np.int64)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=offsets, y=labels, class_names=np.array(["a", "b"]))


def test_shared_cifar10_train_is_the_canonical_50000():
    shared_file("cifar10_train_jpeg.npz")
    data = load_cifar("cifar10", train=True)
    assert data.images.shape == (50000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert hashlib.sha256(data.labels.tobytes()).hexdigest() == (
        "f5cfe00b0f00968c0cc5ff3b1d2de51b10e33efa277c2986f4e0fa63e58c9f4f")
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    assert "quality 75" in data.source


def test_shared_cifar10_train_matches_the_lossless_first_4000():
    shared_file("cifar10_train_jpeg.npz")
    refs = lossless_refs()
    data = load_cifar("cifar10", train=True)
    np.testing.assert_array_equal(data.labels[:4000], refs["cifar10_train_first4000_y"])
    error = np.abs(data.images[:4000].astype(np.int16) - refs["cifar10_train_first4000_x"]).mean()
    assert error < 7.0  # JPEG q75: the data README measures 5.81 / 255


@pytest.mark.skipif(PIL.__version__ != "13.0.0", reason="the README's pixel hash is for Pillow 13.0.0's decoder")
def test_shared_cifar10_train_pixels_match_the_readme_hash():
    shared_file("cifar10_train_jpeg.npz")
    images = load_cifar("cifar10", train=True).images
    assert hashlib.sha256(images.tobytes()).hexdigest() == (
        "5aaf8a2cf2e577ff4dbb15e4f368840fab5aca1812bcc69682005f8dc661d466")


def test_shared_cifar10_test_is_balanced_and_says_it_is_grouped_by_class():
    shared_file("cifar10_test_jpeg.npz")
    data = load_cifar("cifar10", train=False)
    assert data.images.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(data.labels), [1000] * 10)
    assert "grouped by class" in data.source


def test_a_cifar100_archive_loads_the_real_images_bit_exactly(tmp_path, private_cache):
    refs = lossless_refs()
    data = load_cifar("cifar100", train=False, root=make_cifar100_root(tmp_path))
    np.testing.assert_array_equal(data.images, refs["cifar100_test_first20_x"])
    np.testing.assert_array_equal(data.labels, refs["cifar100_test_first20_fine_y"])
    assert len(data.class_names) == 100 and data.class_names[data.labels[0]] == "mountain"


def torchvision_folder_of_pickles(root, marker):
    """``root/cifar-10-batches-py/`` with every file present, each a pickle that would create ``marker``."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(Payload()))
    return root


def test_a_torchvision_folder_that_is_not_the_official_files_is_refused_unread(tmp_path):
    root = torchvision_folder_of_pickles(tmp_path / "data", tmp_path / "executed")
    with pytest.raises(DatasetNotFoundError, match="torchvision layout refused: data_batch_1, .* official CIFAR"):
        load_cifar("cifar10", train=True, root=root)
    assert not (tmp_path / "executed").exists()


def test_ltzoo_data_comes_before_the_shared_folder(tmp_path, monkeypatch, private_cache):
    shared_file("cifar10_test_jpeg.npz")
    monkeypatch.setenv("LTZOO_DATA", str(make_cifar10_root(tmp_path)))
    data = load_cifar("cifar10", train=False)
    assert len(data.labels) == 20 and str(tmp_path) in data.source


def test_an_explicit_root_is_the_only_place_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_cifar("cifar10", train=True, root=tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "cifar10_train_jpeg.npz") in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "shared" not in message and ".cache" not in message


def test_missing_data_is_one_error_listing_every_place_and_the_fixes(isolated_roots, monkeypatch):
    monkeypatch.setenv("LTZOO_DATA", str(isolated_roots / "env"))
    with pytest.raises(FileNotFoundError) as raised:
        load_cifar("cifar100", train=True)
    message = str(raised.value)
    for place in ("env/cifar100_train_jpeg.npz", "env/cifar-100-python", "default/cifar-100-python"):
        assert place in message
    for fix in ("root=", "LTZOO_DATA", "download=True"):
        assert fix in message


def test_an_incomplete_torchvision_folder_names_the_missing_files(tmp_path):
    root = torchvision_folder_of_pickles(tmp_path / "data", tmp_path / "executed")
    (root / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing batches.meta"):
        load_cifar("cifar10", train=True, root=root)


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_cifar("cifar1000", train=True)


def test_decoded_archives_are_cached_atomically_and_reused(isolated_roots, monkeypatch):
    cache = isolated_roots / "decoded"
    monkeypatch.setattr(sources, "DECODED_CACHE_DIR", cache)
    images = lossless_refs()["cifar10_test_first20_x"]
    _jpeg_archive(isolated_roots / "cifar10_test_jpeg.npz", images, np.arange(20) % 2)
    first = load_cifar("cifar10", train=False, root=isolated_roots)
    [cached] = cache.iterdir()
    assert cached.suffix == ".npy" and not list(cache.glob("*.tmp"))
    np.save(cached, np.zeros_like(first.images))
    assert not load_cifar("cifar10", train=False, root=isolated_roots).images.any()


def test_a_changed_archive_is_decoded_again(isolated_roots, monkeypatch):
    monkeypatch.setattr(sources, "DECODED_CACHE_DIR", isolated_roots / "decoded")
    images = lossless_refs()["cifar10_test_first20_x"]
    archive = isolated_roots / "cifar10_test_jpeg.npz"
    _jpeg_archive(archive, images, np.arange(20) % 2)
    load_cifar("cifar10", train=False, root=isolated_roots)
    before = archive.stat().st_mtime_ns
    _jpeg_archive(archive, images[::-1], np.arange(20) % 2)  # same size, new content
    os.utime(archive, ns=(before + 10**9, before + 10**9))
    reloaded = load_cifar("cifar10", train=False, root=isolated_roots)
    assert np.abs(reloaded.images[0].astype(int) - images[-1]).mean() < 10


# --- a damaged archive is one error naming the file (and the image) ------------------------------------------------

def archive_of_ten(root):
    """``root/cifar10_test_jpeg.npz``: 10 real test images, as JPEG, with labels 0 and 1 (of class names a and b)."""
    images = lossless_refs()["cifar10_test_first20_x"][:10]
    _jpeg_archive(root / "cifar10_test_jpeg.npz", images, np.arange(10) % 2)
    with np.load(root / "cifar10_test_jpeg.npz") as z:
        return {key: z[key] for key in z.files}


def test_a_truncated_archive_is_an_error_naming_it(isolated_roots, private_cache):
    archive_of_ten(isolated_roots)
    path = isolated_roots / "cifar10_test_jpeg.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(sources.DataFileError, match=f"{path} is not a readable npz archive"):
        load_cifar("cifar10", train=False, root=isolated_roots)


def test_an_image_that_does_not_decode_is_an_error_naming_its_index(isolated_roots, private_cache):
    arrays = archive_of_ten(isolated_roots)
    start, stop = arrays["offsets"][6], arrays["offsets"][7]
    arrays["jpeg"][start:stop] = 0  # image 6's bytes destroyed
    np.savez(isolated_roots / "cifar10_test_jpeg.npz", **arrays)
    with pytest.raises(sources.DataFileError, match="cifar10_test_jpeg.npz: image 6 does not decode"):
        load_cifar("cifar10", train=False, root=isolated_roots)


def test_an_archive_without_a_key_is_an_error_naming_it(isolated_roots, private_cache):
    arrays = archive_of_ten(isolated_roots)
    del arrays["y"]
    np.savez(isolated_roots / "cifar10_test_jpeg.npz", **arrays)
    with pytest.raises(sources.DataFileError, match=r"lacks the key\(s\) \['y'\]"):
        load_cifar("cifar10", train=False, root=isolated_roots)


def test_labels_out_of_range_are_an_error_before_anything_decodes(isolated_roots, monkeypatch, private_cache):
    arrays = archive_of_ten(isolated_roots)
    arrays["y"][3] = 2  # two class names in the archive: 0 and 1 are the valid labels
    np.savez(isolated_roots / "cifar10_test_jpeg.npz", **arrays)
    monkeypatch.setattr(sources, "_decode_jpegs", lambda *a: pytest.fail("decoded before the labels were checked"))
    with pytest.raises(sources.DataFileError, match=r"label 2 of image 3 is outside \[0, 2\) \(1 such labels\)"):
        load_cifar("cifar10", train=False, root=isolated_roots)
