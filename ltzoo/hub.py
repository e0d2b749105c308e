"""Weights: safetensors only. Download through huggingface_hub, verify sha256, load, and write release folders.

A release folder is timm's Hub format: `model.safetensors` (the inference state dict, loadable strictly by plain
timm), `config.json` (timm keys + an `ltzoo` block), `README.md` (model card) and optionally `heads.safetensors`
(training-only heads).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .models import inference_state_dict, train_heads_state_dict

WEIGHTS_NAME = "model.safetensors"
HEADS_NAME = "heads.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
TIMM_CFG_KEYS = (
    "hf_hub_id", "tag", "num_classes", "input_size", "mean", "std", "crop_pct", "interpolation",
    "first_conv", "classifier", "license", "paper_ids",
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
    """A checkpoint's class count differs from the model's."""


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


def checkpoint_num_classes(state_dict: dict[str, torch.Tensor], classifier_key: str = "fc") -> int | None:
    """The class count a state dict's classifier was trained for (Linear: out × in; NormedLinear: in × out)."""
    if f"{classifier_key}.bias" in state_dict:
        return state_dict[f"{classifier_key}.bias"].shape[0]
    weight = state_dict.get(f"{classifier_key}.weight")
    return None if weight is None else weight.shape[1]


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, adapt_head: bool) -> None:
    """Load strictly; with `adapt_head`, keep the model's freshly initialised classifier instead of the file's."""
    if adapt_head:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        raise CorruptWeightsError(
            f"{source} does not fit {type(model).__name__} ({e}). Is it the checkpoint of another architecture "
            "or classifier kind?"
        ) from None
    missing = [k for k in result.missing_keys if not (adapt_head and k.startswith("fc."))]
    missing = [k for k in missing if not k.startswith("train_heads.")]
    if missing or result.unexpected_keys:
        raise CorruptWeightsError(
            f"{source} does not fit {type(model).__name__}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {result.unexpected_keys[:5]}"
            f"{'…' if len(result.unexpected_keys) > 5 else ''}. Is it the checkpoint of another architecture?"
        )


def save_pretrained(
    model: nn.Module,
    out_dir: str | Path,
    *,
    ltzoo_meta: dict[str, Any] | None = None,
    heads_spec: dict[str, dict] | None = None,
    model_card: str | None = None,
) -> Path:
    """Write a release folder: model.safetensors, [heads.safetensors], config.json, README.md.

    `ltzoo_meta` goes to config.json's `ltzoo` block (name, tag, method, dataset, recipe, metrics, …); the sha256
    of each weights file is added to it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in inference_state_dict(model).items()}
    save_file(weights, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    files = {WEIGHTS_NAME: sha256_file(out / WEIGHTS_NAME)}
    heads = train_heads_state_dict(model)
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
    """Upload a release folder to a Hub repo with huggingface_hub; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                             commit_message=f"Upload {Path(folder).name} with ltzoo")
    return str(info)
