"""The `ltzoo` command's work: list | info | validate | compare | report | cam | serve-hub (parsed by ltzoo_cli)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from . import registry
from .benchmarks import BENCHMARKS
from .hub import ClassCountMismatchError, WeightsError


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
        f"  dataset       {BENCHMARKS[entry.dataset].title}"
        + (f", imbalance factor {cfg['imb_factor']:g}" if "imb_factor" in cfg else ""),
        f"  architecture  {entry.timm_arch} {entry.model_args}, {params:,} parameters",
        f"  input         {tuple(cfg['input_size'])}, mean {cfg['mean']}, std {cfg['std']}, crop_pct {cfg['crop_pct']}",
        f"  hub           {cfg['hf_hub_id']}",
        f"  recipe        {' then '.join(entry.recipe_ids(tag))}  ({registry.RECIPE_DOC})",
    ]
    if entry.ltzoo_recipe:
        lines.append(f"                ltzoo's own recipe, not the paper's: {entry.ltzoo_recipe}")
    if cfg["sha256"]:
        metrics = cfg["metrics"] or {}
        fmt = lambda k: "n/a" if metrics.get(k) is None else f"{metrics[k]:.2f}"  # noqa: E731
        lines += [
            f"  weights       sha256 {cfg['sha256']}",
            f"  measured      top-1 {fmt('top1')}  many {fmt('many')}  medium {fmt('medium')}  few {fmt('few')}",
            f"                by: {release.get('validate_command', 'ltzoo validate')}",
        ]
    else:
        lines.append("  weights       not published yet (train them from the recipe above)")
    print("\n".join(lines))


def cmd_validate(args: argparse.Namespace) -> None:
    from .evaluation.test_distributions import parse_test_dists
    from .precision import default_amp
    from .validate import validate

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
    for signum in (signal.SIGINT, signal.SIGTERM):  # a flag, not KeyboardInterrupt: Ctrl-C mid-print stops cleanly too
        signal.signal(signum, lambda *_: stop.set())
    with LocalHub(args.releases, port=args.port) as hub:
        print(f"serving {len(hub.repo_ids)} release(s) from {Path(args.releases).resolve()}:")
        for repo_id in hub.repo_ids:
            print(f"  {repo_id}")
        print(f"\nexport HF_ENDPOINT={hub.endpoint}\n(Ctrl-C to stop)", flush=True)
        while not stop.wait(0.5):
            pass
    print("stopped")


COMMANDS = {"list": cmd_list, "info": cmd_info, "validate": cmd_validate, "compare": cmd_compare,
            "report": cmd_report, "cam": cmd_cam, "serve-hub": cmd_serve_hub}


def run(args: argparse.Namespace) -> int:
    """Run a parsed `ltzoo` command (ltzoo_cli parses it); a user error is one `error:` line and status 2."""
    if getattr(args, "amp", None) == "none":
        args.amp = None
    try:
        COMMANDS[args.command](args)
    except ClassCountMismatchError as e:  # its message's fix (num_classes=) is the Python API's
        print(f"error: {e.mismatch}; pass --checkpoint weights trained on that name's benchmark, or name a zoo model "
              f"of a {e.file_classes}-class benchmark", file=sys.stderr)
        return 2
    except (registry.UnknownModelError, WeightsError, OSError, ValueError) as e:  # OSError: files, images, ports
        explain = getattr(e, "explain", None)  # DatasetNotFoundError: its fixes in this CLI's terms
        print(f"error: {explain('pass --data-dir <folder>') if explain else e}", file=sys.stderr)
        return 2
    return 0
