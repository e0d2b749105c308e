"""The `ltzoo` command: list | info | validate | compare | report | cam | serve-hub."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from . import registry
from .hub import WeightsError


def cmd_list(args: argparse.Namespace) -> None:
    names = registry.list_models(args.pattern or "", pretrained=args.pretrained, include_tags=args.tags or None)
    for name in names:
        print(name)
    if not names:
        print(f"no model matches {args.pattern!r}" + (" with published weights" if args.pretrained else ""),
              file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> None:
    import timm

    entry, tag = registry.resolve(args.name)
    cfg = registry.get_pretrained_cfg(args.name)
    model = timm.create_model(entry.timm_arch, num_classes=cfg["num_classes"], **entry.model_args)
    params = sum(p.numel() for p in model.parameters())
    release = registry.releases().get(f"{entry.name}.{tag}", {})
    lines = [
        f"{entry.name}.{tag}   (tags: {', '.join(entry.tags)}; default {entry.default_tag})",
        f"  method        {registry.METHODS[entry.method].title}  [{cfg['paper']}]",
        f"  dataset       {registry.DATASETS[entry.dataset].title}"
        + (f", imbalance factor {cfg['imb_factor']:g}" if "imb_factor" in cfg else ""),
        f"  architecture  {entry.timm_arch} {entry.model_args}, {params:,} parameters",
        f"  input         {tuple(cfg['input_size'])}, mean {cfg['mean']}, std {cfg['std']}, crop_pct {cfg['crop_pct']}",
        f"  hub           {cfg['hf_hub_id']}",
        f"  recipe        {entry.train_command(tag)}",
    ]
    note = registry.LTZOO_RECIPES.get((entry.method, entry.dataset))
    if note:
        lines.append(f"                ltzoo's own recipe, not the paper's: {note}")
    if cfg["sha256"]:
        metrics = cfg["metrics"] or {}
        fmt = lambda k: "n/a" if metrics.get(k) is None else f"{metrics[k]:.2f}"  # noqa: E731
        lines += [
            f"  weights       sha256 {cfg['sha256']}",
            f"  measured      top-1 {fmt('top1')}  many {fmt('many')}  medium {fmt('medium')}  few {fmt('few')}",
            f"                by: {release.get('validate_command', 'ltzoo validate')}",
        ]
    else:
        lines.append("  weights       not published yet (train them with the recipe command)")
    print("\n".join(lines))


def _posthoc_tau(value: str) -> float:
    """argparse type of a post-hoc τ: a number ≥ 0."""
    try:
        tau = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"τ must be a number, got {value!r}") from None
    if not tau >= 0 or tau == float("inf"):
        raise argparse.ArgumentTypeError(f"τ must be a finite number ≥ 0, got {value!r}")
    return tau


def cmd_validate(args: argparse.Namespace) -> None:
    from .evaluation.test_distributions import parse_test_dists
    from .validate import default_amp, validate

    test_dists = parse_test_dists(args.test_dist) if args.test_dist else None
    amp = default_amp() if args.amp == "auto" else args.amp
    with ExitStack() as stack:
        if args.local_hub:
            from .hub_server import LocalHub, use_endpoint

            hub = stack.enter_context(LocalHub(args.local_hub))
            use_endpoint(hub.endpoint)
            print(f"serving {len(hub.repo_ids)} release(s) from {args.local_hub} at {hub.endpoint}", file=sys.stderr)
        pretrained = args.pretrained or args.checkpoint is None
        if args.sweep:
            from .evaluation.sweep import sweep

            if args.split != "test" or args.json or args.plot or args.flip or amp:
                raise ValueError("--sweep prints the τ grid and the test metrics at the chosen τ; run it without "
                                 "--split/--json/--plot/--flip/--amp, then validate at that τ for files")
            result = sweep(args.name, args.sweep, pretrained=pretrained, checkpoint=weights_file(args.checkpoint),
                           data_dir=args.data_dir, batch_size=args.batch_size, cache=not args.no_cache,
                           test_dists=test_dists or ())
            print(result.format_report())
            return
        result = validate(
            args.name, pretrained=pretrained, checkpoint=weights_file(args.checkpoint), data_dir=args.data_dir,
            split=args.split, batch_size=args.batch_size, flip=args.flip, amp=amp, json_out=args.json, plot=args.plot,
            test_dists=test_dists, logit_adjust=args.logit_adjust, tau_norm=args.tau_norm, cache=not args.no_cache,
        )
    adjusted = [f"{flag} τ={tau:g}" for flag, tau in (("logit-adjust", args.logit_adjust),
                                                       ("tau-norm", args.tau_norm)) if tau is not None]
    print(result.format_report(f"{args.name} ({args.split}{''.join(', ' + a for a in adjusted)})"))
    if args.json:
        print(f"metrics written to {args.json}")
    if args.plot:
        print(f"plot written to {args.plot}")
        if test_dists:
            from .validate import test_dists_plot_path

            print(f"shifted test distributions plot written to {test_dists_plot_path(args.plot)}")


def cmd_compare(args: argparse.Namespace) -> None:
    from .evaluation.compare import compare, comparison_table, plot_per_class_comparison
    from .evaluation.test_distributions import plot_test_dists

    models = compare(args.names, releases_dir=args.releases, data_dir=args.data_dir, batch_size=args.batch_size,
                     cache=not args.no_cache)
    print(comparison_table(models, markdown=args.markdown, commands=args.commands))
    if args.plot:
        plot_per_class_comparison(models, args.plot)
        print(f"per-class plot written to {args.plot}")
    if args.test_dist_plot:
        plot_test_dists({m.name: m.result.test_dists for m in models}, args.test_dist_plot)
        print(f"shifted test distributions plot written to {args.test_dist_plot}")


def cmd_report(args: argparse.Namespace) -> None:
    from .evaluation.report import write_report

    index = write_report(args.releases, args.out, data_dir=args.data_dir, batch_size=args.batch_size,
                         cache=not args.no_cache)
    print(f"report written to {index} (open it in a browser; no server needed)")


def weights_file(checkpoint: str | None) -> str | None:
    """The file `--checkpoint` names: a .safetensors file as given, or the model.safetensors of a release folder."""
    if checkpoint is None or not Path(checkpoint).is_dir():
        return checkpoint
    inside = Path(checkpoint) / "model.safetensors"
    if not inside.is_file():
        raise FileNotFoundError(f"{checkpoint} is a folder without model.safetensors; pass --checkpoint a "
                                ".safetensors file or a release folder (releases/<name>.<tag>/) that holds one")
    return str(inside)


def cmd_cam(args: argparse.Namespace) -> None:
    from .cam_overlay import cifar_test_images, load_image_files, save_cam_overlays
    from .factory import create_model

    entry, _ = registry.resolve(args.name)
    cfg = registry.get_pretrained_cfg(args.name)
    model = create_model(args.name, pretrained=args.checkpoint is None,
                         checkpoint_path=weights_file(args.checkpoint)).eval()
    if args.images:
        images, labels, names = load_image_files(args.images, tuple(cfg["input_size"][1:])), None, None
    else:
        images, labels, names = cifar_test_images(entry.dataset, args.index, args.data_dir)
    for path in save_cam_overlays(model, images, labels, cfg["mean"], cfg["std"], args.out, lam=args.lam,
                                  kind=args.kind, target=args.target, class_names=names):
        print(path)


def cmd_serve_hub(args: argparse.Namespace) -> None:
    from .hub_server import LocalHub

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalHub(args.releases, port=args.port) as hub:
        print(f"serving {len(hub.repo_ids)} release(s) from {Path(args.releases).resolve()}:")
        for repo_id in hub.repo_ids:
            print(f"  {repo_id}")
        print(f"\nexport HF_ENDPOINT={hub.endpoint}\n(Ctrl-C to stop)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("stopped")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="ltzoo", description="A timm-style model zoo for long-tailed recognition.")
    p.add_argument("--version", action="version", version=f"ltzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list zoo names")
    s.add_argument("pattern", nargs="?", help="fnmatch filter, e.g. '*smcl*'")
    s.add_argument("--pretrained", action="store_true", help="only entries with published weights (with tags)")
    s.add_argument("--tags", action="store_true", help="list every name.tag")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="architecture, recipe, paper and measured metrics of a name")
    s.add_argument("name")
    s.set_defaults(func=cmd_info)

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
    s.add_argument("--logit-adjust", type=_posthoc_tau, metavar="TAU",
                   help="post-hoc logit adjustment: predict with z − τ·log(training prior)")
    s.add_argument("--tau-norm", type=_posthoc_tau, metavar="TAU",
                   help="τ-normalised classifier: a linear head's class vectors w_k / ‖w_k‖^τ")
    s.add_argument("--sweep", choices=("logit_adjust", "tau_norm"),
                   help="print held-out accuracy over τ = 0, 0.1, ..., 3 and the test metrics at the τ best there")
    s.add_argument("--no-cache", action="store_true", help="run the model even where cached predictions exist")
    s.add_argument("--local-hub", metavar="RELEASES_DIR",
                   help="serve this releases folder on a local Hub for the run (offline use)")
    s.set_defaults(func=cmd_validate)

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
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="write a static HTML leaderboard of every release in a folder")
    s.add_argument("releases", metavar="RELEASES_DIR", help="folder of release folders (NAME.TAG/model.safetensors)")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="folder the site is written to")
    s.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--no-cache", action="store_true", help="run the models even where cached predictions exist")
    s.set_defaults(func=cmd_report)

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
    s.set_defaults(func=cmd_cam)

    s = sub.add_parser("serve-hub", help="serve release folders to huggingface_hub from a local Hub (olah)")
    s.add_argument("releases", nargs="?", default="releases")
    s.add_argument("--port", type=int, default=None, help="default: a free port")
    s.set_defaults(func=cmd_serve_hub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "amp", None) == "none":
        args.amp = None
    try:
        args.func(args)
    except (registry.UnknownModelError, WeightsError, OSError, ValueError) as e:  # OSError: files, images, ports
        explain = getattr(e, "explain", None)  # DatasetNotFoundError: its fixes in this CLI's terms
        print(f"error: {explain('pass --data-dir <folder>') if explain else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
