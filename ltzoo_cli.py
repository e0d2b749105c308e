"""The `ltzoo` console command: its argument parser, kept outside the `ltzoo` package so it answers at once.

Importing `ltzoo` registers its architectures with timm, which imports torch (seconds on a cold start); here
`ltzoo --help`, `ltzoo COMMAND --help`, `ltzoo --version` and every usage error answer from argparse alone, and
the package (ltzoo.cli, which runs the command) is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("ltzoo")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        from ltzoo import __version__

        return __version__


def posthoc_tau(value: str) -> float:
    """argparse type of a post-hoc τ: a number ≥ 0."""
    try:
        tau = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"τ must be a number, got {value!r}") from None
    if not tau >= 0 or tau == float("inf"):
        raise argparse.ArgumentTypeError(f"τ must be a finite number ≥ 0, got {value!r}")
    return tau


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltzoo", description="A timm-style model zoo for long-tailed recognition.")
    p.add_argument("--version", action="version", version=f"ltzoo {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list zoo names")
    s.add_argument("pattern", nargs="?", help="fnmatch filter, e.g. '*smcl*'")
    s.add_argument("--pretrained", action="store_true", help="only entries with published weights (with tags)")
    s.add_argument("--tags", action="store_true", help="list every name.tag")
    s = sub.add_parser("info", help="architecture, recipe, paper and measured metrics of a name")
    s.add_argument("name")
    s = sub.add_parser("validate", help="evaluate a zoo model on the benchmark in its name")
    s.add_argument("name")
    weights = s.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", action="store_true", help="published weights from the Hub (the default)")
    weights.add_argument("--checkpoint", help="a local .safetensors file, or a release folder holding one")
    s.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    s.add_argument("--split", choices=("test", "val", "heldout"), default="test",
                   help="heldout: training images outside the long-tailed subset (CIFAR) or the val list, for tuning")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    s.add_argument("--amp", choices=("auto", "bf16", "none"), default="none",
                   help="autocast dtype; auto = bf16 where the hardware has it natively")
    s.add_argument("--json", help="write the metrics as JSON here")
    s.add_argument("--plot", help="save the per-class long-tail figure and reliability diagram (PNG) here")
    s.add_argument("--test-dist", metavar="NAMES",
                   help="also top-1 on shifted test distributions: 'all' or a comma list such as backward50,uniform "
                        "(forward/backward 50, 25, 10, 5, 2 and uniform; docs/evaluation.md)")
    s.add_argument("--logit-adjust", type=posthoc_tau, metavar="TAU",
                   help="post-hoc logit adjustment: predict with z − τ·log(training prior)")
    s.add_argument("--tau-norm", type=posthoc_tau, metavar="TAU",
                   help="τ-normalised classifier: a linear head's class vectors w_k / ‖w_k‖^τ")
    s.add_argument("--sweep", choices=("logit_adjust", "tau_norm"),
                   help="print held-out accuracy over τ = 0, 0.1, ..., 3 and the test metrics at the τ best there")
    s.add_argument("--no-cache", action="store_true", help="run the model even where cached predictions exist")
    s.add_argument("--local-hub", metavar="RELEASES_DIR",
                   help="serve this releases folder on a local Hub for the run (offline use)")
    s = sub.add_parser("compare", help="several models on the same test data: one table, shared plots")
    s.add_argument("names", nargs="+", metavar="NAME")
    s.add_argument("--releases", metavar="RELEASES_DIR",
                   help="load each NAME from RELEASES_DIR/NAME/model.safetensors instead of the Hub")
    s.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--plot", help="save per-class accuracy, one line per model (PNG) here")
    s.add_argument("--test-dist-plot", help="save top-1 against the test distribution, one line per model (PNG)")
    s.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    s.add_argument("--commands", action="store_true", help="add the validate command of each row")
    s.add_argument("--no-cache", action="store_true", help="run the models even where cached predictions exist")
    s = sub.add_parser("report", help="write a static HTML leaderboard of every release in a folder")
    s.add_argument("releases", metavar="RELEASES_DIR", help="folder of release folders (NAME.TAG/model.safetensors)")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="folder the site is written to")
    s.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--no-cache", action="store_true", help="run the models even where cached predictions exist")
    s = sub.add_parser("cam", help="draw CAM overlays with the SMCL mask box to PNG")
    s.add_argument("name")
    s.add_argument("--checkpoint", help="a local .safetensors file or release folder (default: the published weights)")
    s.add_argument("--index", type=int, nargs="+", default=[0, 1, 2, 3], help="CIFAR-LT test-set indices")
    s.add_argument("--images", nargs="+", help="image files instead (CAM of the prediction)")
    s.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    s.add_argument("--out", default="cams", help="folder for cam_<i>.png")
    s.add_argument("--lam", type=float, default=0.5, help="box ratio λ: the box covers about 1 − λ of the image")
    s.add_argument("--kind", choices=("cam", "gradcam"), default="cam")
    s.add_argument("--target", choices=("label", "pred"), default="label")
    s = sub.add_parser("serve-hub", help="serve release folders to huggingface_hub from a local Hub (olah)")
    s.add_argument("releases", nargs="?", default="releases")
    s.add_argument("--port", type=int, default=None, help="default: a free port")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ltzoo.cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
