"""The prediction cache: where it lives, what its key depends on, and that a bad entry is recomputed."""

import numpy as np
import torch

from ltzoo.evaluate import Predictions
from ltzoo.evaluation import cache

IDENTITY = {"weights_sha256": "ab" * 32, "data": {"images_sha256": "cd" * 32}, "flip": False, "amp": None}


def test_the_cache_lives_under_ltzoo_cache_dir_when_it_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    assert cache.cache_dir() == tmp_path / "predictions"


def test_without_the_override_the_cache_is_the_user_cache_dirs_ltzoo_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "ltzoo" / "predictions"


def test_the_key_changes_with_the_weights_the_data_or_the_flip_and_not_with_key_order():
    key = cache.prediction_key(IDENTITY)
    assert key == cache.prediction_key(dict(reversed(list(IDENTITY.items()))))
    assert key != cache.prediction_key({**IDENTITY, "weights_sha256": "ef" * 32})
    assert key != cache.prediction_key({**IDENTITY, "data": {"images_sha256": "00" * 32}})
    assert key != cache.prediction_key({**IDENTITY, "flip": True})


def test_an_arrays_hash_depends_on_its_values_dtype_and_shape():
    array = np.arange(12, dtype=np.uint8)
    assert cache.array_sha256(array) == cache.array_sha256(array.copy())
    assert cache.array_sha256(array) != cache.array_sha256(array.reshape(3, 4))
    assert cache.array_sha256(array) != cache.array_sha256(array.astype(np.int64))


def test_saved_predictions_load_back_equal(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    saved = Predictions(torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1]), torch.randn(5, 8), 123.5)
    key = cache.prediction_key(IDENTITY)
    cache.save_predictions(key, saved, IDENTITY)
    loaded = cache.load_predictions(key)
    assert torch.equal(loaded.logits, saved.logits) and torch.equal(loaded.labels, saved.labels)
    assert torch.equal(loaded.features, saved.features) and loaded.images_per_sec == 123.5


def test_a_missing_or_corrupt_entry_reads_as_absent(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    key = cache.prediction_key(IDENTITY)
    assert cache.load_predictions(key) is None
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / f"{key}.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert cache.load_predictions(key) is None
