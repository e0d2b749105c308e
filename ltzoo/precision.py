"""Numeric precision: whether this machine runs bf16 natively, and the autocast dtype each precision name means.

One home for the choice `ltzoo validate`, the CLI, training and the benchmarks all make: bf16 where the device has it
natively (a CUDA device that supports it, or a CPU with AVX-512 BF16 / AMX BF16), else fp32. Emulated bf16 is slower
than fp32 on a CPU without those instructions, so "auto" never picks it there.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["AMP_DTYPES", "default_amp", "default_device"]

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16}
_CPUINFO = Path("/proc/cpuinfo")


def _cpu_has_native_bf16() -> bool:
    """Whether /proc/cpuinfo lists a native bf16 instruction set (AVX-512 BF16 or AMX BF16)."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def default_device() -> torch.device:
    """The device evaluation runs on: the current CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_amp() -> str | None:
    """"bf16" when the default device has native bf16 (CUDA bf16 support, or a bf16 CPU), else None (fp32)."""
    if default_device().type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else None
    return "bf16" if _cpu_has_native_bf16() else None
