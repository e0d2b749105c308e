"""A disk cache of a model's predictions on a split, so ``compare`` and ``report`` run each model once.

An entry is keyed by the sha256 of a canonical JSON ``identity``: the weights' sha256, the data's identity (for
CIFAR the sha256 of the decoded image array and of the label array; for a list-file benchmark the list file's
sha256 and the resolved image folder), the eval transform (input size, crop_pct, interpolation, mean, std), flip
and amp. Random-init weights (no sha256) are never cached. Entries are safetensors files (logits, labels, features)
under ``$LTZOO_CACHE_DIR/predictions`` or, by default, ``$XDG_CACHE_HOME/ltzoo/predictions`` (``~/.cache/ltzoo``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ltzoo.evaluate import Predictions

__all__ = ["CACHE_ENV", "array_sha256", "cache_dir", "load_predictions", "prediction_key", "save_predictions"]

CACHE_ENV = "LTZOO_CACHE_DIR"
_FORMAT = 1


def cache_dir() -> Path:
    """Where cached predictions live: ``$LTZOO_CACHE_DIR/predictions``, else the user cache dir's ltzoo folder."""
    root = os.environ.get(CACHE_ENV)
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ltzoo"
    return Path(root) / "predictions"


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's C-order bytes, its dtype and shape."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def prediction_key(identity: dict[str, Any]) -> str:
    """The cache key of an evaluation: sha256 of its identity as sorted, compact JSON (plus the entry format)."""
    text = json.dumps({"format": _FORMAT, **identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / f"{key}.safetensors"


def load_predictions(key: str) -> Predictions | None:
    """The cached predictions under ``key``, or None when absent or unreadable (a corrupt entry is recomputed)."""
    path = _path(key)
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        with path.open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (SafetensorError, OSError, ValueError):
        return None
    speed = header.get("__metadata__", {}).get("images_per_sec")
    return Predictions(logits=tensors["logits"], labels=tensors["labels"], features=tensors.get("features"),
                       images_per_sec=float(speed) if speed else None)


def save_predictions(key: str, predictions: Predictions, identity: dict[str, Any]) -> Path:
    """Write ``predictions`` under ``key`` atomically (temp file, then rename); the identity goes in the metadata."""
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"logits": predictions.logits.contiguous(), "labels": predictions.labels.contiguous()}
    if predictions.features is not None:
        tensors["features"] = predictions.features.contiguous()
    metadata = {"identity": json.dumps(identity, sort_keys=True),
                "images_per_sec": "" if predictions.images_per_sec is None else repr(predictions.images_per_sec)}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)
    return path
