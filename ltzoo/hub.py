"""Weights: safetensors only. Download through huggingface_hub, verify sha256, load, and write release folders.

A release folder is timm's Hub format: `model.safetensors` (the inference state dict, loadable strictly by plain
timm), `config.json` (timm keys + an `ltzoo` block), `README.md` (model card) and optionally `heads.safetensors`
(training-only heads).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from timm.models import PretrainedCfg
from torch import nn

from . import registry

_log = logging.getLogger("ltzoo")

WEIGHTS_NAME = "model.safetensors"
HEADS_NAME = "heads.safetensors"
TRAIN_HEADS_PREFIX = "train_heads."  # state-dict keys of the training-only heads: heads.safetensors, not model's
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
# timm's pretrained-cfg fields a release's config.json records; never a weights source (the repo's own
# model.safetensors is the weights) and none of ltzoo's extras (they live in the `ltzoo` block).
TIMM_CFG_KEYS = tuple(
    f.name for f in dataclasses.fields(PretrainedCfg)
    if f.name not in {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "custom_load",
                      "architecture"}
)


class WeightsError(RuntimeError):
    """Base of every weights problem a user can meet; the message says what to do."""


class WeightsNotAvailableError(WeightsError):
    """The entry has no published weights (yet), or the Hub has no such repo/file."""


class CorruptWeightsError(WeightsError):
    """A weights file is truncated, not safetensors, or its sha256 differs from the recorded one."""


class HubUnreachableError(WeightsError):
    """The Hub could not be reached and nothing usable is cached."""


class ClassCountMismatchError(WeightsError):
    """A checkpoint's class count differs from the model's. The message's fix is the Python API's (num_classes=);
    `mismatch` and `file_classes` let a caller without that option (the CLI) word its own."""

    def __init__(self, mismatch: str, file_classes: int) -> None:
        self.mismatch, self.file_classes = mismatch, file_classes
        super().__init__(f"{mismatch}. Pass num_classes={file_classes} to use it as is, or another count to "
                         "re-initialise the head.")


class UnverifiedWeightsError(WeightsError):
    """Weights ltzoo cannot verify: a Hub repo without a recorded sha256, a URL, a pickle, a custom loader."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large weights never sit in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _clear_cache_hint(path: Path) -> str:
    for parent in path.parents:
        if parent.name.startswith("models--"):
            return f"Delete the cached copy (`rm -rf {parent}`) and try again."
    return "Replace the file with a good copy."


def verify_sha256(path: str | Path, expected: str) -> None:
    """Refuse a file whose sha256 differs from the recorded one."""
    path = Path(path)
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptWeightsError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual} "
            f"(the file is corrupt, truncated or not the published release). {_clear_cache_hint(path)}"
        )


def load_safetensors(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never a pickle), after checking its sha256 when one is recorded."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotAvailableError(f"weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise CorruptWeightsError(f"{path} is not a .safetensors file; ltzoo loads safetensors weights only")
    if expected_sha256:
        verify_sha256(path, expected_sha256)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptWeightsError(
            f"{path} is not a readable safetensors file ({e}); it is probably truncated or corrupt. "
            f"{_clear_cache_hint(path)}"
        ) from None


def hub_endpoint() -> str:
    """The Hub URL the huggingface_hub client uses: ``HF_ENDPOINT`` as read when it was imported, or huggingface.co."""
    from huggingface_hub import constants

    return constants.ENDPOINT


REACH_TIMEOUT_S = 2.0  # how long a pretrained load waits to learn that the Hub is unreachable


def hub_reachable(endpoint: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `endpoint`'s host opens within `timeout` seconds, name lookup included.

    huggingface_hub retries an unreachable Hub five times with backoff (about 25 s) before it falls back to its cache;
    probing first lets a load without a Hub use the cache, or fail with advice, at once."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    outcome: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    probe = threading.Thread(target=connect, daemon=True)  # a thread: name lookup does not honour the timeout
    probe.start()
    probe.join(timeout)
    return bool(outcome and outcome[0])


def download(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """Download one file of a Hub repo through huggingface_hub (its cache, HF_ENDPOINT, HF_HUB_OFFLINE); with the
    Hub unreachable, the cached copy, else at once an error that says how to serve the releases locally."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    offline = constants.HF_HUB_OFFLINE or not hub_reachable(constants.ENDPOINT)
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline))
    except LocalEntryNotFoundError:
        state = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "unreachable"
        raise HubUnreachableError(
            f"could not fetch {filename} of {repo_id}: the Hub at HF_ENDPOINT={constants.ENDPOINT} is {state} and "
            "nothing is cached. Without the internet, serve the releases folder on a local Hub: add "
            "`--local-hub releases` to `ltzoo validate`, or run `ltzoo serve-hub releases/` and export the "
            "HF_ENDPOINT it prints."
        ) from None
    except (EntryNotFoundError, HfHubHTTPError) as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise WeightsNotAvailableError(
            f"the Hub at {constants.ENDPOINT} has no file {filename} in repo {repo_id} "
            f"(the repo or the file does not exist there; HTTP {status})."
        ) from None
    except OSError as e:
        raise HubUnreachableError(
            f"could not fetch {filename} of {repo_id} from HF_ENDPOINT={constants.ENDPOINT}: {e}"
        ) from None


def read_config(path: str | Path) -> dict[str, Any]:
    """A release's config.json as a dict; an unreadable or malformed file raises CorruptWeightsError."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CorruptWeightsError(f"{path} is not a readable config.json ({e})") from None


# --- one sha256 policy for every load path --------------------------------------------------------------------
# Every load, from ltzoo.create_model or plain timm after `import ltzoo` (the architectures' entry functions call
# `verify_pretrained_source` before timm's `load_pretrained` reads a byte), goes through these functions:
# a Hub file is checked against the registry's sha256 (a published release) or the one its config.json records;
# a local file against the config.json beside it or, in a folder named for a release, the registry's; a local file
# without any record loads with a one-line notice; URLs, pickles and custom loaders are refused.

# Architecture arguments a Hub config.json's `model_args` may set; anything else (checkpoint_path,
# pretrained_cfg, pretrained_cfg_overlay, …) would let a repo redirect what gets loaded.
HUB_MODEL_ARGS = frozenset({"classifier", "cosine_scale", "embed_dim", "in_chans", "global_pool"})
# pretrained_cfg keys that name a weights source; a Hub config.json must not set them (timm ignores them for an
# `hf-hub:` load, ltzoo refuses them so that no reader is ever pointed at another file).
_SOURCE_KEYS = frozenset({"url", "file", "state_dict", "hf_hub_filename", "custom_load"})


def recorded_sha256(path: str | Path) -> str | None:
    """The sha256 recorded for a local weights file: in the config.json beside it (`ltzoo.files`), else the
    registry's when the file is the model.safetensors of a folder named for a published release."""
    path = Path(path)
    config = path.with_name(CONFIG_NAME)
    if config.is_file():
        sha = read_config(config).get("ltzoo", {}).get("files", {}).get(path.name)
        if sha:
            return sha
    if path.name == WEIGHTS_NAME:
        return registry.releases().get(path.parent.name, {}).get("sha256")
    return None


def local_weights_file(path: str | Path) -> Path:
    """`path` as an existing .safetensors file, or a one-line error saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise WeightsNotAvailableError(
            f"{path} is a folder; pass the weights file inside it ({path / WEIGHTS_NAME})")
    if not path.is_file():
        raise WeightsNotAvailableError(f"weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise CorruptWeightsError(f"{path} is not a .safetensors file; ltzoo loads safetensors weights only")
    return path


def check_local_weights(path: str | Path) -> str | None:
    """Verify a local safetensors file against its recorded sha256 (raises on mismatch); without a record, log a
    one-line notice that it loads unverified. Returns the recorded sha256, or None."""
    path = local_weights_file(path)
    expected = recorded_sha256(path)
    if expected:
        verify_sha256(path, expected)
    else:
        _log.warning("ltzoo: no sha256 recorded for %s (no config.json beside it, not a release folder): "
                     "loading it unverified", path)
    return expected


def hub_meta(repo_id: str) -> dict[str, Any]:
    """The `ltzoo` block of a Hub repo's config.json ({} when it has none)."""
    return read_config(download(repo_id, CONFIG_NAME)).get("ltzoo", {})


def hub_expected_sha256(repo_id: str) -> str | None:
    """The sha256 model.safetensors of a Hub repo must have: the registry's for a published release (trusted over
    the repo's own record), else the one its config.json records; None when neither exists."""
    release = registry.release_of_hub_repo(repo_id)
    if release:
        return registry.releases()[release]["sha256"]
    return hub_meta(repo_id).get("files", {}).get(WEIGHTS_NAME)


def check_hub_config(repo_id: str, config: dict[str, Any]) -> None:
    """Refuse a Hub config.json whose `model_args` or `pretrained_cfg` could redirect what gets loaded."""
    extra = sorted(set(config.get("model_args", {})) - HUB_MODEL_ARGS)
    if extra:
        raise UnverifiedWeightsError(
            f"the config.json of Hub repo {repo_id} sets model_args {extra} that ltzoo does not accept from a Hub "
            f"repo; allowed: {sorted(HUB_MODEL_ARGS)}")
    sources = sorted(k for k in set(config.get("pretrained_cfg", {})) & _SOURCE_KEYS if config["pretrained_cfg"][k])
    if sources:
        raise UnverifiedWeightsError(
            f"the config.json of Hub repo {repo_id} points its pretrained_cfg at other weights ({sources}); ltzoo "
            f"loads only the repo's own {WEIGHTS_NAME}, checked by sha256")


def verify_pretrained_source(cfg: dict[str, Any]) -> None:
    """Check, before timm's `load_pretrained` reads anything, the weights it would load for this pretrained cfg.

    The source is resolved with timm's own resolution (`timm.models._builder._resolve_pretrained_source`, private:
    using it keeps this check and timm's reader on the same file). A Hub file is downloaded into the client's cache
    and checked here, so timm then reads the verified cached copy; a repo without model.safetensors is refused
    rather than letting timm fall back to a pickle.
    """
    from timm.models._builder import _resolve_pretrained_source

    load_from, location = _resolve_pretrained_source(cfg)
    if load_from == "hf-hub":
        if isinstance(location, tuple) or cfg.get("custom_load"):
            raise UnverifiedWeightsError(
                f"the pretrained cfg of {cfg.get('hf_hub_id')} names another weights file or a custom loader; "
                f"ltzoo loads only {WEIGHTS_NAME}, checked by sha256")
        expected = hub_expected_sha256(location)
        if not expected:
            raise UnverifiedWeightsError(
                f"Hub repo {location} is not a published ltzoo release and its config.json records no sha256 for "
                f"{WEIGHTS_NAME} (no ltzoo.files entry), so its weights cannot be verified. Download the file and "
                "load it knowingly with create_model(..., checkpoint_path=...).")
        verify_sha256(download(location, WEIGHTS_NAME), expected)
    elif load_from == "local-dir":
        check_local_weights(Path(location) / WEIGHTS_NAME)
    elif load_from == "file":
        check_local_weights(location)
    elif load_from == "url":
        raise UnverifiedWeightsError(
            f"ltzoo loads weights from the Hub or a local .safetensors file, not from a URL ({location})")


_SHA256_HEX = frozenset("0123456789abcdef")


def _hub_lfs_sha256(cached: Path) -> str | None:
    """The sha256 the Hub recorded for a cached file: huggingface_hub names a blob by the etag the Hub served, which
    for an LFS file (every timm weights file) is the sha256 of its content; a plain git file's is a 40-hex sha1."""
    name = cached.resolve().name
    return name if len(name) == 64 and set(name) <= _SHA256_HEX else None


def timm_backbone_weights(model_name: str, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """timm's pretrained weights of `model_name` ("resnet152" for its default tag, or "resnet152.tv_in1k"), fetched
    from the Hub as safetensors and checked by sha256 before they are read.

    The hash is the one a recipe pins (`model.pretrained_backbone_sha256`), else the one the Hub recorded for the LFS
    file. ltzoo keeps this instead of `timm.create_model(pretrained=True)` because timm checks no hash and, for a tag
    without Hub weights, unpickles a `.pth` from a URL; the verified tensors go back to timm's `load_pretrained`
    (as a `state_dict` overlay) for its classifier and input-channel handling.
    """
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        raise WeightsNotAvailableError(f"timm has no pretrained weights for {model_name!r}")
    repo_id, filename = cfg.hf_hub_id, cfg.hf_hub_filename or WEIGHTS_NAME
    if not repo_id or not filename.endswith(".safetensors") or cfg.custom_load:
        raise UnverifiedWeightsError(
            f"timm's pretrained {model_name} is not on the Hub as a safetensors file; ltzoo loads no other weights. "
            "Pick a tag from timm.list_pretrained() whose weights are on the Hub.")
    path = download(repo_id, filename)
    expected = expected_sha256 or _hub_lfs_sha256(path)
    if not expected:
        raise UnverifiedWeightsError(
            f"the Hub at {constants.ENDPOINT} records no sha256 for {repo_id}/{filename} (not an LFS file), so the "
            f"backbone weights cannot be verified; pin it with model.pretrained_backbone_sha256={sha256_file(path)} "
            "once you trust this file.")
    state_dict = load_safetensors(path, expected)
    _log.info("ltzoo: backbone weights %s/%s, sha256 %s verified", repo_id, filename, expected)
    return state_dict


def refuse_non_finite(state_dict: dict[str, torch.Tensor], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """A `pretrained_filter_fn` for timm: refuse weights holding NaN or Inf (a diverged run or a corrupt file)."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CorruptWeightsError(
                f"weights tensor {key!r} holds NaN or Inf values: the file is corrupt or comes from a diverged run")
    return state_dict


def split_train_heads(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A model's state dict as (inference weights: exactly what plain timm loads strictly, training-only heads keyed
    relative to `train_heads`): what model.safetensors and heads.safetensors hold."""
    n = len(TRAIN_HEADS_PREFIX)
    inference = {k: v for k, v in state_dict.items() if not k.startswith(TRAIN_HEADS_PREFIX)}
    heads = {k[n:]: v for k, v in state_dict.items() if k.startswith(TRAIN_HEADS_PREFIX)}
    return inference, heads


def checkpoint_num_classes(path: str | Path, classifier_key: str) -> int | None:
    """The class count a safetensors file's classifier was trained for (Linear: out × in; NormedLinear: in × out),
    read from the file's header without loading the tensors. `classifier_key` is the classifier module's name, the
    architecture's `pretrained_cfg["classifier"]`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if f"{classifier_key}.bias" in keys:
                return f.get_slice(f"{classifier_key}.bias").get_shape()[0]
            if f"{classifier_key}.weight" in keys:
                return f.get_slice(f"{classifier_key}.weight").get_shape()[1]
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptWeightsError(
            f"{path} is not a readable safetensors file ({e}); it is probably truncated or corrupt. "
            f"{_clear_cache_hint(Path(path))}"
        ) from None
    return None


def save_pretrained(
    model: nn.Module,
    out_dir: str | Path,
    *,
    ltzoo_meta: dict[str, Any] | None = None,
    heads_spec: dict[str, dict] | None = None,
    model_card: str | None = None,
) -> Path:
    """Write a release folder: model.safetensors, [heads.safetensors], config.json, README.md.

    ltzoo's own rather than timm's `save_for_hf`: that writes the whole state dict (the training-only heads would
    land in model.safetensors, which plain timm then no longer loads strictly) and copies `model.pretrained_cfg`
    into config.json with ltzoo's extras, which timm's `PretrainedCfg(**cfg)` refuses on an `hf-hub:` load.

    `ltzoo_meta` goes to config.json's `ltzoo` block (name, tag, method, dataset, recipe, metrics, …); the sha256
    of each weights file is added to it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inference, heads = split_train_heads(model.state_dict())
    weights = {k: v.detach().contiguous().cpu() for k, v in inference.items()}
    save_file(weights, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    files = {WEIGHTS_NAME: sha256_file(out / WEIGHTS_NAME)}
    if heads:
        save_file({k: v.detach().contiguous().cpu() for k, v in heads.items()}, str(out / HEADS_NAME))
        files[HEADS_NAME] = sha256_file(out / HEADS_NAME)
    for name in files:  # safetensors creates its files owner-only (0600); a release is for everyone to read
        (out / name).chmod(0o644)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    model_args = {"classifier": model.classifier}
    if getattr(model, "cosine_scale", 1.0) != 1.0:
        model_args["cosine_scale"] = model.cosine_scale
    if getattr(getattr(model, "embed", None), "out_features", None):
        model_args["embed_dim"] = model.embed.out_features
    meta = dict(ltzoo_meta or {})
    meta["files"] = files
    if heads_spec:
        meta["heads"] = heads_spec
    config = {
        "architecture": cfg.get("architecture") or model.default_cfg["architecture"],
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "model_args": model_args,
        "pretrained_cfg": {k: cfg[k] for k in TIMM_CFG_KEYS if cfg.get(k) is not None and k != "hf_hub_id"},
        "ltzoo": meta,
    }
    config["pretrained_cfg"]["num_classes"] = model.num_classes
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
    if model_card is not None:
        (out / CARD_NAME).write_text(model_card)
    return out


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a release folder to a Hub repo with huggingface_hub; returns the commit URL.

    An upload of the folder as written, not timm's `push_to_hf_hub`: that re-saves the model (by default also as a
    pickle) instead of publishing the verified files whose sha256 the registry records."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                             commit_message=f"Upload {Path(folder).name} with ltzoo")
    return str(info)
