"""What trained which epochs: a run resumed across commits or machines records each, so its release says so."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNRECORDED = "unrecorded"  # epochs trained before runs recorded their history


def code_revision(root: Path = ROOT) -> str:
    """The git commit checked out at `root` (12 hex digits), with '+dirty' when tracked files differ from it;
    'unknown' outside a git checkout or without git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")


def extend_history(history: list[dict] | None, revision: str, hardware: str, first_epoch: int,
                   epochs: int) -> list[dict]:
    """`history` ([] for a fresh run; a checkpoint's list of {"from_epoch", "revision", "hardware"}, None when the
    checkpoint predates the record) continued from `first_epoch` (1-based) of `epochs`: a new segment only when the
    code or the hardware changed and an epoch is left to train (a finished run resumed to export trains none)."""
    history = list(history) if history is not None else [{"from_epoch": 1, "revision": UNRECORDED}]
    if first_epoch > epochs:
        return history
    if not history or (history[-1]["revision"], history[-1].get("hardware")) != (revision, hardware):
        history.append({"from_epoch": first_epoch, "revision": revision, "hardware": hardware})
    return history


def describe_history(history: list[dict], epochs: int) -> str:
    """'epochs 1–80: code `abc123` on <hardware>; epochs 81–200: code `def456` on <hardware>' for a model card."""
    ends = [segment["from_epoch"] - 1 for segment in history[1:]] + [epochs]
    return "; ".join(
        f"epochs {segment['from_epoch']}–{end}: code `{segment['revision']}`"
        + (f" on {segment['hardware']}" if segment.get("hardware") else "")
        for segment, end in zip(history, ends))
