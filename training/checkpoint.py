"""Training checkpoints with nothing to unpickle, written atomically and verified before a resume trusts them.

accelerate's `save_state` torch.save's the optimizer and RNG states (pickles) and `load_state` unpickles registered
objects with `weights_only=False` (`custom_checkpoint_N.pkl`), so a planted file in a run dir would execute on
resume. ltzoo writes its own: every state is a safetensors file whose non-tensor structure is JSON in the file's
metadata, the folder is filled under a temporary name, fsync'd and renamed into place, and meta.json records each
file's sha256, so a torn or damaged checkpoint is detected and `--resume auto` can fall back to an earlier one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model

from ltzoo.hub import check_local_weights, sha256_file

META = "meta.json"
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
METHOD = "method.safetensors"
STRUCTURE = "ltzoo.structure"  # the safetensors metadata key holding a state's JSON skeleton


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or loaded: missing, torn, damaged, or made by another setup."""


def rng_file(rank: int) -> str:
    return f"rng_{rank}.safetensors"


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` as JSON, its tensors moved to `tensors` (by key) and numpy arrays listed; dict keys keep their type."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)  # own, packed storage
        return {"tensor": key}
    if isinstance(value, np.ndarray):
        return {"ndarray": {"data": value.tolist(), "dtype": str(value.dtype)}}
    if isinstance(value, dict):
        return {"dict": [[k, _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_encode(v, tensors) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot checkpoint a {type(value).__name__} without pickle")


def _decode(node: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    (kind, payload), = node.items()
    if kind == "tensor":
        return tensors[payload]
    if kind == "ndarray":
        return np.asarray(payload["data"], dtype=payload["dtype"])
    if kind == "dict":
        return {k: _decode(v, tensors) for k, v in payload}
    if kind == "list":
        return [_decode(v, tensors) for v in payload]
    if kind == "tuple":
        return tuple(_decode(v, tensors) for v in payload)
    return payload


def save_state(path: Path, state: Any) -> None:
    """Write a (nested) state of tensors, numbers, strings, lists, tuples, dicts and numpy arrays to one
    safetensors file: tensors as tensors, the rest as JSON in the file's metadata."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    save_file(tensors, str(path), metadata={STRUCTURE: json.dumps(skeleton)})


def load_state(path: Path) -> Any:
    """Read what `save_state` wrote, without unpickling anything."""
    with safe_open(str(path), framework="pt") as f:
        skeleton = json.loads((f.metadata() or {})[STRUCTURE])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    return _decode(skeleton, tensors)


def rng_state() -> dict[str, Any]:
    """This process's random generators: Python, NumPy, torch CPU and every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entry to disk (a folder's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_dir(ckpt: Path) -> Path:
    """Where `ckpt` is assembled before its rename: hidden from `checkpoint_dirs` (it does not match epoch_*)."""
    return ckpt.with_name(f".{ckpt.name}.partial")


def begin(ckpt: Path) -> Path:
    """A fresh, empty staging folder for `ckpt` (what a killed save left there is discarded)."""
    staging = staging_dir(ckpt)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def write_shared(staging: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 method_state: dict[str, Any]) -> None:
    """The states every process holds equal (rank 0 writes them): weights, optimizer, method (e.g. a MoCo queue)."""
    save_model(model, str(staging / MODEL), force_contiguous=True)
    save_state(staging / OPTIMIZER, optimizer.state_dict())
    save_state(staging / METHOD, method_state)


def write_rng(staging: Path, rank: int) -> None:
    save_state(staging / rng_file(rank), rng_state())


def commit(staging: Path, ckpt: Path, meta: dict[str, Any], world_size: int) -> None:
    """Record every file's sha256 in meta.json, fsync the files, then rename the folder into place; a kill at any
    point leaves either the previous checkpoints alone or this one complete."""
    names = [MODEL, OPTIMIZER, METHOD, *(rng_file(r) for r in range(world_size))]
    for name in names:
        _fsync(staging / name)
    meta = {**meta, "world_size": world_size, "files": {name: sha256_file(staging / name) for name in names}}
    (staging / META).write_text(json.dumps(meta))
    _fsync(staging / META)
    _fsync(staging)
    if ckpt.exists():  # an earlier, damaged copy of this epoch (a resume fell back past it): set it aside first
        discard(ckpt)
    os.rename(staging, ckpt)
    _fsync(ckpt.parent)


def discard(ckpt: Path) -> None:
    """Remove a checkpoint: renamed out of `checkpoint_dirs`' sight first, so a kill mid-removal leaves no half."""
    doomed = ckpt.with_name(f".{ckpt.name}.removing")
    shutil.rmtree(doomed, ignore_errors=True)
    os.rename(ckpt, doomed)
    _fsync(ckpt.parent)
    shutil.rmtree(doomed)


def read_meta(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, after checking that it parses and that every file it lists is there, whole."""
    try:
        meta = json.loads((ckpt / META).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no {META}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{META} does not parse ({e})") from None
    required = ("epoch", "fingerprint", "files", "world_size")
    if not isinstance(meta, dict) or not all(key in meta for key in required):
        raise CheckpointError(f"{META} lacks {[k for k in required if not isinstance(meta, dict) or k not in meta]} "
                              "(a checkpoint of an older ltzoo, which pickled its states, is not loaded; "
                              "training/convert_checkpoint.py converts it)")
    for name, expected in meta["files"].items():
        if not (ckpt / name).is_file():
            raise CheckpointError(f"{name} is missing")
        if sha256_file(ckpt / name) != expected:
            raise CheckpointError(f"{name} is damaged (sha256 differs from the one {META} recorded)")
    return meta


def stage_weights(source: str | Path) -> Path:
    """The weights file a later stage starts from (a DSCL probe's `init_from`): a checkpoint folder's model weights,
    once `read_meta` has verified every file of it, or a .safetensors file, checked against any sha256 recorded for
    it (ltzoo.hub.check_local_weights); a one-line error naming `init_from` otherwise."""
    path = Path(source).expanduser()
    if path.is_dir():
        try:
            read_meta(path)
        except CheckpointError as e:
            raise CheckpointError(f"method.init_from {path} is not a complete checkpoint: {e}; point it at the "
                                  "earlier stage's last checkpoint folder (<run_dir>/checkpoints/epoch_NNNN) or a "
                                  ".safetensors file") from None
        return path / MODEL
    if not path.exists():
        raise FileNotFoundError(f"method.init_from {path} does not exist: point it at the earlier stage's last "
                                "checkpoint folder (<run_dir>/checkpoints/epoch_NNNN) or a .safetensors file")
    check_local_weights(path)
    return path


def restore(ckpt: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, method: Any, rank: int,
            world_size: int, device: torch.device | str) -> None:
    """Load a verified checkpoint into the (unwrapped) model, the optimizer, the method and this process's RNGs."""
    meta = read_meta(ckpt)
    if meta["world_size"] != world_size:
        raise CheckpointError(f"{ckpt} was written by {meta['world_size']} process(es), this run has {world_size}; "
                              "resume it with the same number of processes")
    try:
        load_model(model, str(ckpt / MODEL), device=str(device))
        optimizer.load_state_dict(load_state(ckpt / OPTIMIZER))
        method_state = load_state(ckpt / METHOD)
        if method_state:
            method.load_state_dict(method_state)
        set_rng_state(load_state(ckpt / rng_file(rank)))
    except (SafetensorError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt} does not fit this run: {str(e).splitlines()[0]}") from None
