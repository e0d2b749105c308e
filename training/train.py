"""Rebuild a zoo entry: `accelerate launch -q training/train.py --config training/configs/<name>.<tag>.yaml [k=v ...]`.

Thin by design: config in, objects from ltzoo, an accelerate loop with per-epoch checkpoints and exact resume,
TensorBoard and tqdm, then a final `ltzoo validate` and the export: into `<run_dir>/export/<name>.<tag>/` (or
`release_dir=DIR`), and into `releases/<name>.<tag>/` only with `--release`, for the recipe file unchanged.

A run that cannot train stops with one `error: ...` line and a non-zero status. `accelerate launch` follows any
non-zero status with its own CalledProcessError traceback (it cannot tell a user error from a crash) unless given
`-q`/`--quiet`, which leaves train.py's own output, tracebacks of real crashes included, as it is.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from safetensors.torch import save, save_file
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ltzoo  # noqa: E402
from ltzoo import registry  # noqa: E402
from ltzoo.data.splits import ImageReadError  # noqa: E402
from ltzoo.evaluate import evaluate  # noqa: E402
from ltzoo.hub import WEIGHTS_NAME, WeightsError, load_safetensors, sha256_file  # noqa: E402
from ltzoo.methods import TrainingMethod  # noqa: E402
from ltzoo.precision import default_amp  # noqa: E402
from ltzoo.scheduler import build_scheduler  # noqa: E402
from training import checkpoint  # noqa: E402
from training.builders import build_run, train_step  # noqa: E402
from training.config import ConfigError, TrainConfig, load_config  # noqa: E402
from training.export import (  # noqa: E402
    ROOT,
    check_overwrite,
    export_dir,
    export_release,
    repo_path,
)
from training.model_card import pct  # noqa: E402
from training.provenance import code_revision, extend_history  # noqa: E402

CHECKPOINTS = "checkpoints"
META = checkpoint.META
LOCK = "train.lock"
SELECTED = "selected"  # run_dir/selected/epoch_XXXX.safetensors: the weights of the epoch `select: val` picked
SHOW_EVERY = 10  # steps between progress-bar loss updates: the only device-to-host reads of the step loop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training/configs/<name>.<tag>.yaml")
    p.add_argument("--resume", default="none", help="'auto' (last checkpoint of this run), a checkpoint dir, or 'none'")
    p.add_argument("--no-export", action="store_true", help="skip the final validate + export")
    p.add_argument("--release", action="store_true",
                   help="export into releases/<name>.<tag>/ (refused unless the config is the recipe file unchanged)")
    p.add_argument("--force", action="store_true",
                   help="with --release: replace an existing release even if its weights differ")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. epochs=2 data.batch_size=64")
    return p.parse_intermixed_args(argv)  # overrides may come before and after the flags


def precision_name(accelerator: Accelerator) -> str:
    """The training precision as logs and model cards print it: bf16 or fp32 (accelerate calls fp32 "no")."""
    return "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision


LAUNCHER_PRECISION = "ACCELERATE_MIXED_PRECISION"  # how `accelerate launch --mixed_precision X` reaches the script


def apply_launcher_precision(cfg: TrainConfig, launcher: str | None) -> None:
    """Honour `accelerate launch --mixed_precision bf16`: it beats `precision: auto`, as the override precision=bf16
    would (so it counts in the fingerprint); fp16, or bf16 against the config's fp32, is refused. The launcher's
    'no' is also its default, which cannot be told from an explicit flag: the config decides (see precision_notice)."""
    if launcher in (None, "", "no"):
        return
    if launcher != "bf16":
        raise ConfigError(f"accelerate launch --mixed_precision {launcher}: ltzoo trains in bf16 or fp32 only; "
                          "pass --mixed_precision bf16, or set the config's precision (auto, bf16, fp32)")
    if cfg.precision == "fp32":
        raise ConfigError("accelerate launch --mixed_precision bf16 contradicts the config's precision: fp32; "
                          "drop the flag, or pass precision=bf16")
    cfg.precision = "bf16"


LAUNCHER_DYNAMO = "ACCELERATE_DYNAMO_BACKEND"  # how `accelerate launch --dynamo_backend X` (or its config) reaches it


def apply_launcher_compile(cfg: TrainConfig, launcher: str | None) -> None:
    """Honour `accelerate launch --dynamo_backend inductor` as `compile: true` (its other dynamo settings are not
    read); other backends are refused. The run compiles the model itself (its Accelerator is told 'no'): accelerate's
    own wrapper would reach checkpoints and exports through `unwrap_model`, whose state dict names every weight
    `_orig_mod.<name>`."""
    backend = (launcher or "no").lower()
    if backend == "no":
        return
    if backend != "inductor":
        raise ConfigError(f"accelerate launch --dynamo_backend {launcher}: ltzoo compiles with inductor only; pass "
                          "--dynamo_backend inductor, or compile=true")
    cfg.compile = True


def precision_notice(cfg: TrainConfig, launcher: str | None) -> str | None:
    """The line that says the launcher's 'no' did not make this run fp32, where the config trains bf16."""
    if launcher == "no" and mixed_precision(cfg) == "bf16":
        return (f"precision bf16 from the config (precision: {cfg.precision}); accelerate launch's --mixed_precision "
                "'no' is also its default, so it cannot ask for fp32: pass precision=fp32 for that")
    return None


def mixed_precision(cfg: TrainConfig) -> str:
    """'bf16' where the hardware runs it natively (auto), else 'no' (fp32)."""
    if cfg.precision == "auto":
        return "bf16" if default_amp() == "bf16" else "no"
    return "bf16" if cfg.precision == "bf16" else "no"


def hold_run_lock(run_dir: Path) -> Any:
    """Lock `run_dir` for this process's lifetime (rank 0 only), so a second run of the same config cannot write into
    the same checkpoints; the open file is returned and must stay referenced."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"another process (pid {holder}) is training into {run_dir}; wait for it to finish, stop it, "
                          "or give this run another run_dir=...") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoint folders, oldest first (whether each is complete and intact is `checkpoint.read_meta`'s
    to say: a folder only gets its name once it is complete)."""
    return sorted(p for p in (run_dir / CHECKPOINTS).glob("epoch_*") if p.is_dir())


def find_resume(cfg: TrainConfig, resume: str) -> Path | None:
    """The checkpoint to resume from: the given folder, which must verify, or with 'auto' the newest that verifies
    (each one skipped is printed with the reason); None to start afresh. Made by another config: an error."""
    if resume == "none":
        return None
    candidates = checkpoint_dirs(cfg.resolved_run_dir())[::-1] if resume == "auto" else [Path(resume)]
    skipped = []
    for ckpt in candidates:
        try:
            meta = checkpoint.read_meta(ckpt)
        except checkpoint.CheckpointError as e:
            skipped.append(f"{ckpt}: {e}")
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"not resuming from {ckpt}: {e}", flush=True)
            continue
        if meta["fingerprint"] != cfg.fingerprint():
            raise ConfigError(
                f"cannot resume from {ckpt}: it was made by a different config ({meta['config_path']}, "
                f"fingerprint {meta['fingerprint']} vs {cfg.fingerprint()}). Use another run_dir or --resume none."
            )
        return ckpt
    if skipped:
        raise ConfigError(f"no checkpoint to resume from verifies ({'; '.join(skipped)}); start over with --resume "
                          "none (into another run_dir to keep these)")
    return None


def finished(cfg: TrainConfig, resume_from: Path | None) -> bool:
    """Whether the checkpoint resumed from is the run's last epoch, so the run only exports."""
    return resume_from is not None and checkpoint.read_meta(resume_from)["epoch"] + 1 >= cfg.epochs


def earlier_stage(init_from: str | None) -> dict[str, Any] | None:
    """What trained the checkpoint a later stage starts from (a DSCL probe's `init_from`), for the release card: its
    recipe, epochs, time and history, and whether its config still is that recipe file's (None: the file is gone or
    no longer loads). None when `init_from` is unset or a bare weights file, which records none of it."""
    ckpt = Path(init_from).expanduser() if init_from else None
    if ckpt is None or not (ckpt / META).is_file():
        return None
    meta = json.loads((ckpt / META).read_text())
    recipe = Path(meta["config_path"])
    if not recipe.is_absolute() and not recipe.is_file():
        recipe = ROOT / recipe  # recorded as given on the command line, usually relative to the repository
    try:
        as_recipe = load_config(recipe).fingerprint() == meta["fingerprint"]
    except ConfigError:
        as_recipe = None
    return {"recipe": repo_path(str(recipe)), "epochs": meta["epoch"] + 1, "train_seconds": round(meta["elapsed_s"], 1),
            "history": meta.get("history"), "as_recipe": as_recipe}


def save_checkpoint(accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    method: TrainingMethod, cfg: TrainConfig, config_path: str, epoch: int, elapsed: float,
                    selection: dict[str, Any] | None, history: list[dict]) -> None:
    """Checkpoint the epoch atomically (training.checkpoint), then drop all but the last `keep_checkpoints` and the
    selected-weights files no remaining checkpoint records."""
    run_dir = cfg.resolved_run_dir()
    ckpt = run_dir / CHECKPOINTS / f"epoch_{epoch:04d}"
    staging = checkpoint.staging_dir(ckpt)
    if accelerator.is_main_process:
        checkpoint.begin(ckpt)
        checkpoint.write_shared(staging, accelerator.unwrap_model(model), optimizer, method.state_dict())
    accelerator.wait_for_everyone()
    checkpoint.write_rng(staging, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        meta = {"epoch": epoch, "fingerprint": cfg.fingerprint(), "config_path": config_path, "elapsed_s": elapsed,
                "selection": selection, "history": history}
        checkpoint.commit(staging, ckpt, meta, accelerator.num_processes)
        for old in checkpoint_dirs(run_dir)[: -cfg.keep_checkpoints]:
            checkpoint.discard(old)
        keep = {selection_file(run_dir, s["epoch"]) for s in map(recorded_selection, checkpoint_dirs(run_dir)) if s}
        for stale in set((run_dir / SELECTED).glob("epoch_*.safetensors")) - keep:
            stale.unlink()
    accelerator.wait_for_everyone()


def recorded_selection(ckpt: Path) -> dict[str, Any] | None:
    """The val selection a checkpoint's meta.json records (None: none, or the meta.json does not read)."""
    try:
        return json.loads((ckpt / META).read_text()).get("selection")
    except (OSError, ValueError, AttributeError):
        return None


def selection_file(run_dir: Path, epoch: int) -> Path:
    return run_dir / SELECTED / f"epoch_{epoch:04d}.safetensors"


def save_selection(run_dir: Path, model: torch.nn.Module, epoch: int, val_top1: float) -> dict[str, Any]:
    """Keep `model`'s weights as the val-selected epoch (1-based); the next checkpoint's meta.json records it, and
    only then are earlier selections removed, so a kill in between resumes with the previous one intact."""
    path = selection_file(run_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path.with_suffix(".tmp")))
    checkpoint._fsync(path.with_suffix(".tmp"))  # durable before the rename, as a checkpoint's files
    os.replace(path.with_suffix(".tmp"), path)
    checkpoint._fsync(path.parent)
    return {"on": "val", "epoch": epoch, "val_top1": val_top1, "sha256": sha256_file(path)}


def load_selection(run_dir: Path, selection: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The val-selected weights the export takes, checked against the sha256 the checkpoint's meta.json records for
    them (a run from before the record loads them unchecked); a damaged or missing file is one error line."""
    path = selection_file(run_dir, selection["epoch"])
    try:
        return load_safetensors(path, selection.get("sha256"))
    except WeightsError as e:
        raise ConfigError(f"the val-selected weights of epoch {selection['epoch']} cannot be exported: {e}") from None


def state_digest(state: dict[str, Any]) -> str:
    """sha256 over a state dict in key order (tensors bitwise, other values by repr): equal digests, equal states."""
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the model.safetensors an export of `model` writes (ltzoo.save_pretrained's bytes): equal digests
    mean bitwise-equal inference weights, and the digest is the one `sha256sum` gives for the exported file."""
    weights = {k: v.detach().contiguous().cpu() for k, v in ltzoo.models.inference_state_dict(model).items()}
    return hashlib.sha256(save(weights, metadata={"format": "pt"})).hexdigest()


def hardware(accelerator: Accelerator, compiled: bool = False) -> str:
    """What runs the epochs, precision and `torch.compile` included: a run resumed where any of it differs starts a
    new history segment (`precision: auto` is bf16 only where the CPU has it natively; compiled kernels round
    differently from eager ones, so the model card says which epochs ran compiled)."""
    compile_note = ", torch.compile" if compiled else ""
    if torch.cuda.is_available():
        return (f"{accelerator.num_processes} × {torch.cuda.get_device_name()}, {precision_name(accelerator)}"
                f"{compile_note}")
    cpu = platform.processor() or platform.machine()
    return (f"{accelerator.num_processes} process(es) on {cpu} CPU, {torch.get_num_threads()} threads, "
            f"{precision_name(accelerator)}{compile_note}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        apply_launcher_precision(cfg, os.environ.get(LAUNCHER_PRECISION))
        apply_launcher_compile(cfg, os.environ.get(LAUNCHER_DYNAMO))
        registry.resolve(cfg.full_name)  # a zoo entry, or an error naming the closest ones
        schedule = build_scheduler(cfg.schedule, cfg.optim.lr, cfg.epochs)
        resume_from = find_resume(cfg, args.resume)
        export_to = export_dir(cfg, args.config, args.release)
        if args.release and not args.no_export and not finished(cfg, resume_from):
            check_overwrite(export_to / cfg.full_name, None, args.force)  # a run that trains: fail before it does
        lock = hold_run_lock(cfg.resolved_run_dir())  # noqa: F841 (held until the process exits)
    except (ValueError, registry.UnknownModelError) as e:  # ConfigError is a ValueError, as the schedule's errors
        raise SystemExit(f"error: {e}") from None

    run_dir = cfg.resolved_run_dir()
    accelerator = Accelerator(
        # on a machine without a GPU, say so: accelerate then forms a gloo group (MULTI_CPU) under torchrun-style
        # launchers (`accelerate launch --multi_gpu`, `torchrun`) instead of N unrelated single-process runs
        cpu=not torch.cuda.is_available(),
        mixed_precision=mixed_precision(cfg), log_with="tensorboard",
        dynamo_backend="no",  # `compile` decides, and the run compiles the model itself (apply_launcher_compile)
        # methods whose training-only heads sit out some iterations (e.g. SMCL's plain steps) leave them unused
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "tb")),
    )
    set_seed(cfg.seed)
    notice = precision_notice(cfg, os.environ.get(LAUNCHER_PRECISION))
    if notice:
        accelerator.print(notice)
    try:
        run = build_run(cfg, accelerator.device, accelerator.process_index, accelerator.num_processes)
    except (FileNotFoundError, ValueError) as e:
        explain = getattr(e, "explain", None)  # DatasetNotFoundError: its fixes in a training config's terms
        raise SystemExit(f"error: {explain('set data.root=<folder>') if explain else e}") from None
    data, method, train_loader = run.data, run.method, run.loader
    heads_spec = method.heads_spec(run.model.head_hidden_size)
    model, optimizer = accelerator.prepare(run.model, run.optimizer)
    train_model = torch.compile(model) if cfg.compile else model

    start_epoch, elapsed, selection, history = 0, 0.0, None, []
    if resume_from is not None:
        try:
            checkpoint.restore(resume_from, accelerator.unwrap_model(model), optimizer, method,
                               accelerator.process_index, accelerator.num_processes, accelerator.device)
        except checkpoint.CheckpointError as e:
            raise SystemExit(f"error: {e}") from None
        meta = checkpoint.read_meta(resume_from)
        start_epoch, elapsed, selection = meta["epoch"] + 1, meta["elapsed_s"], meta.get("selection")
        history = meta.get("history")  # None: a checkpoint from before runs recorded their history
        accelerator.print(f"resumed from {resume_from} (epoch {start_epoch} done)")
    history = extend_history(history, code_revision(), hardware(accelerator, cfg.compile), start_epoch + 1, cfg.epochs)
    accelerator.init_trackers("train", config={"config": args.config, "fingerprint": cfg.fingerprint()})
    accelerator.print(f"{cfg.full_name}: {len(train_loader)} iterations/epoch, "
                      f"precision {precision_name(accelerator)}, data: {data.source}")

    iters = len(train_loader)
    amp_dtype = torch.bfloat16 if accelerator.mixed_precision == "bf16" else None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train_loader.set_epoch(epoch)
        method.on_epoch_start(epoch)
        train_model.train()
        sums: dict[str, Any] = {}  # per-step logs summed where they are (on the device): read once, at epoch end
        shown = None  # the loss to show on the bar, read one step later, when the device has long computed it
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not accelerator.is_local_main_process,
                   leave=False)
        for i, batch in enumerate(bar):
            lr = schedule.lr_at(epoch, i, iters)
            loss, logs = train_step(method, train_model, optimizer, batch, epoch, lr, accelerator.autocast,
                                    accelerator.backward)
            loss_value = loss.detach()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + (v.detach() if isinstance(v, torch.Tensor) else v)
            if shown is not None:
                bar.set_postfix(loss=f"{shown.item():.3f}", lr=f"{lr:.2e}")
            shown = loss_value if i % SHOW_EVERY == 0 else None
        elapsed += time.perf_counter() - t0
        stats = {f"train/{k}": float(v) / iters for k, v in sums.items()}
        stats.update({"train/lr": lr, "train/epoch_seconds": time.perf_counter() - t0})
        last = epoch + 1 == cfg.epochs
        if accelerator.is_main_process and ((epoch + 1) % cfg.eval_every == 0 or last):
            split = "val" if cfg.select == "val" else "test"  # selecting on val: test is measured once, by the export
            result = evaluate(accelerator.unwrap_model(model), data.val if split == "val" else data.test,
                              data.class_counts, progress=False, amp_dtype=amp_dtype, device=accelerator.device)
            stats.update({f"{split}/{k}": v for k, v in result.to_dict(include_confusion=False).items()
                          if k in ("top1", "top5", "many", "medium", "few", "ece") and v is not None})
            groups = " ".join(f"{g} {pct(getattr(result, g))}" for g in ("many", "medium", "few"))
            accelerator.print(f"epoch {epoch + 1}: {split} top-1 {result.top1:.2f} {groups}")
            if split == "val" and (selection is None or result.top1 > selection["val_top1"]):
                selection = save_selection(run_dir, accelerator.unwrap_model(model), epoch + 1, result.top1)
        accelerator.log(stats, step=epoch + 1)
        save_checkpoint(accelerator, model, optimizer, method, cfg, args.config, epoch, elapsed, selection, history)

    if accelerator.num_processes > 1:
        # DDP broadcasts buffers (BatchNorm running stats) from rank 0 at the start of each forward, so after the last
        # step every rank holds its own; take rank 0's, the ones checkpointed and exported, so all ranks end equal
        for buffer in accelerator.unwrap_model(model).buffers():
            torch.distributed.broadcast(buffer.data, src=0)
    print(f"[rank {accelerator.process_index}/{accelerator.num_processes}] final weights sha256 "
          f"{weights_digest(accelerator.unwrap_model(model))}; global batch "
          f"{cfg.data.batch_size // accelerator.num_processes} x {accelerator.num_processes}", flush=True)
    if method.state_dict():  # e.g. a MoCo queue: every process must hold the same
        print(f"[rank {accelerator.process_index}/{accelerator.num_processes}] method state sha256 "
              f"{state_digest(method.state_dict())}", flush=True)
    if accelerator.is_main_process and method.exports_release and not args.no_export:
        if cfg.select == "val":
            try:
                accelerator.unwrap_model(model).load_state_dict(load_selection(run_dir, selection))
            except ConfigError as e:
                raise SystemExit(f"error: {e}") from None
            selection = {k: v for k, v in selection.items() if k != "sha256"}  # the release records the epoch chosen
            accelerator.print(f"exporting epoch {selection['epoch']}: best val top-1 ({selection['val_top1']:.2f})")
        else:
            selection = {"on": "last", "epoch": cfg.epochs}
        try:
            check_overwrite(export_to / cfg.full_name, weights_digest(accelerator.unwrap_model(model)), args.force)
        except ConfigError as e:
            raise SystemExit(f"error: {e} (the run's last checkpoint is kept: `--release --force --resume auto` "
                             "only exports it)") from None
        out = export_release(accelerator.unwrap_model(model), cfg, args.config, args.overrides,
                             out=export_to / cfg.full_name, heads_spec=heads_spec, selection=selection,
                             train_seconds=elapsed, history=history,
                             earlier_stage=earlier_stage(cfg.method.get("init_from")),
                             precision=precision_name(accelerator), data_source=data.source)
        accelerator.print(f"release written to {out} (model.safetensors sha256 {sha256_file(out / WEIGHTS_NAME)})")
    accelerator.wait_for_everyone()
    accelerator.end_training()  # last: it destroys the process group that wait_for_everyone needs


if __name__ == "__main__":
    try:
        main()
    except ImageReadError as e:  # a listed image that a data worker could not read mid-run: its one line, no traceback
        raise SystemExit(f"error: {e}") from None
