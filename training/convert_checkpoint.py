"""Convert checkpoints written by an older train.py (accelerate's save_state) so `--resume` can continue them:
`python training/convert_checkpoint.py <run_dir>/checkpoints/epoch_NNNN [...]`.

Those folders hold pickles (optimizer.bin, random_states_N.pkl, custom_checkpoint_0.pkl), which train.py no longer
opens. This one-off, run by hand on one's own checkpoints, reads them with torch's restricted unpickler
(`weights_only=True`, NumPy's array types allowed, as accelerate's own loader does: no code runs) and rewrites the
folder in the current format (training/checkpoint.py), atomically; the pickles go with the old folder.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

from accelerate.utils import load as restricted_torch_load  # torch.load(weights_only=True) with NumPy's types
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import checkpoint  # noqa: E402

DDP_PREFIX = "module."  # a model accelerate saved from inside DistributedDataParallel


def convert(ckpt: Path) -> None:
    """Rewrite one accelerate-format checkpoint folder in place, in the current format."""
    meta = json.loads((ckpt / checkpoint.META).read_text())
    if "files" in meta:
        raise ValueError(f"{ckpt} is already in the current format")
    rng_files = sorted(ckpt.glob("random_states_*.pkl"))
    if not rng_files or not (ckpt / "optimizer.bin").is_file() or not (ckpt / checkpoint.MODEL).is_file():
        raise ValueError(f"{ckpt} is not an accelerate checkpoint (model.safetensors, optimizer.bin, "
                         "random_states_N.pkl)")
    staging = checkpoint.begin(ckpt)
    weights = load_file(str(ckpt / checkpoint.MODEL))
    weights = {k.removeprefix(DDP_PREFIX): v.contiguous() for k, v in weights.items()}
    save_file(weights, str(staging / checkpoint.MODEL), metadata={"format": "pt"})
    checkpoint.save_state(staging / checkpoint.OPTIMIZER, restricted_torch_load(ckpt / "optimizer.bin"))
    custom = ckpt / "custom_checkpoint_0.pkl"
    checkpoint.save_state(staging / checkpoint.METHOD, restricted_torch_load(custom) if custom.is_file() else {})
    for rank, path in enumerate(sorted(rng_files, key=lambda p: int(p.stem.rsplit("_", 1)[1]))):
        old = restricted_torch_load(path)
        state = {"python": old["random_state"], "numpy": old["numpy_random_seed"], "torch": old["torch_manual_seed"]}
        if "torch_cuda_manual_seed" in old:
            state["cuda"] = old["torch_cuda_manual_seed"]
        checkpoint.save_state(staging / checkpoint.rng_file(rank), state)
    checkpoint.commit(staging, ckpt, meta, world_size=len(rng_files))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (<run_dir>/checkpoints/epoch_NNNN)")
    for ckpt in p.parse_args(argv).checkpoints:
        try:
            convert(ckpt)
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as e:  # refused by the restricted unpickler
            raise SystemExit(f"error: {ckpt}: {e}") from None
        print(f"converted {ckpt}")


if __name__ == "__main__":
    main()
