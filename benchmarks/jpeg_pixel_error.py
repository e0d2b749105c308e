"""How far the shared JPEG (q75) CIFAR-10 is from the originals, pixel by pixel, on the 4,000 training images that
also exist bit-exact (all the pairs `jpeg_effect.py` splits into training and held-out images). The CIFAR-10 model
cards quote the mean.
Usage: python benchmarks/jpeg_pixel_error.py [--json results/jpeg_pixel_error.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a folder of scripts beside the package
from benchmarks.jpeg_effect import versions  # noqa: E402


def pixel_error(lossless: np.ndarray, jpeg: np.ndarray) -> dict[str, float | int]:
    """Mean absolute error in 1/255 steps over all values, the worst image's mean, and the fraction of exact values."""
    diff = np.abs(lossless.astype(np.int16) - jpeg.astype(np.int16))
    return {"images": len(diff), "mean_abs_error": float(diff.mean()),
            "worst_image_mean_abs_error": float(diff.reshape(len(diff), -1).mean(axis=1).max()),
            "exact_fraction": float((diff == 0).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the measurement here (the CIFAR-10 model cards quote it)")
    args = p.parse_args()
    data = versions()
    error = pixel_error(data["lossless"][0], data["jpeg_q75"][0])
    print(f"{error['images']:,} images: mean absolute error {error['mean_abs_error']:.2f}/255, worst image "
          f"{error['worst_image_mean_abs_error']:.1f}/255, {100 * error['exact_fraction']:.1f}% of values exact")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"command": "python benchmarks/jpeg_pixel_error.py " + " ".join(sys.argv[1:]), **error}, indent=2) + "\n")


if __name__ == "__main__":
    main()
