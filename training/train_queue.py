"""The training queue that survives sessions: `training/queue.txt` lists the runs in order, this trains them.

    python training/train_queue.py status     # done / running (epoch, s/epoch, ETA) / failed / waiting, a line each
    python training/train_queue.py start      # (re)start the queue in the background; each run resumes (--resume auto)
    python training/train_queue.py stop       # stop the queue and its run; `start` resumes from the last checkpoint

A run is *done* when its export (releases/<name>.<tag>/ for `--release`, else `<release_dir>/<name>.<tag>/`) holds
a config.json made by the same config (equal fingerprints), so a fresh machine with an empty ~/.cache skips every
run whose result is committed. A run without an export of its own (DSCL's representation stage) is done when its last
checkpoint exists or the next line (the stage that starts from it) is done. The queue file is re-read before each
run, so editing it reorders what is still waiting. Logs: ~/.cache/ltzoo/queue.log.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import ConfigError, TrainConfig, config_from_dict, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUEUE_FILE = ROOT / "training" / "queue.txt"
STATE_DIR = Path(os.environ.get("LTZOO_QUEUE_DIR", "~/.cache/ltzoo")).expanduser()
POLL_SECONDS = 60.0
MAX_FAILURES_IN_A_ROW = 3  # then the fault is the code's or the machine's, not a run's: stop instead of failing all


@dataclass(frozen=True)
class Item:
    """One line of the queue: a config, its overrides and train.py flags."""

    line: str
    config: str
    overrides: tuple[str, ...]
    flags: tuple[str, ...]

    @property
    def args(self) -> list[str]:
        return [self.config, *self.overrides, *self.flags]


def read_queue(path: Path = QUEUE_FILE) -> list[Item]:
    """The queue file's runs in order (blank lines and `#` comments skipped)."""
    items = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        config, *rest = shlex.split(line)
        items.append(Item(line, config, tuple(w for w in rest if not w.startswith("--")),
                          tuple(w for w in rest if w.startswith("--"))))
    return items


def item_config(item: Item) -> TrainConfig:
    return load_config(ROOT / item.config, list(item.overrides))


def export_dir(item: Item, cfg: TrainConfig) -> Path | None:
    """Where the run's result lands; None for a run that exports nothing by itself (a representation stage)."""
    if "--release" in item.flags:
        return ROOT / "releases" / cfg.full_name
    if any(o.startswith("release_dir=") for o in item.overrides):
        release_dir = Path(cfg.release_dir).expanduser()
        return (release_dir if release_dir.is_absolute() else ROOT / release_dir) / cfg.full_name
    return None


def exported_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the config that made an export folder; None when there is no complete export there."""
    try:
        meta = json.loads((folder / "config.json").read_text())["ltzoo"]
        if not meta.get("metrics"):
            return None  # the export stops before validate has measured it: not finished
        return config_from_dict(meta["config"]).fingerprint()
    except (OSError, KeyError, ValueError):
        return None


def checkpoint_metas(cfg: TrainConfig) -> list[dict]:
    """meta.json of each of the run's complete checkpoints (readable ones), newest first."""
    metas = []
    for meta in sorted((cfg.resolved_run_dir() / "checkpoints").glob("epoch_*/meta.json"), reverse=True):
        try:
            metas.append(json.loads(meta.read_text()))
        except (OSError, ValueError):
            continue
    return metas


def last_checkpoint(cfg: TrainConfig) -> dict | None:
    """meta.json of the run's newest complete checkpoint, or None."""
    metas = checkpoint_metas(cfg)
    return metas[0] if metas else None


def lock_holder(cfg: TrainConfig) -> str | None:
    """The pid training into this run dir (train.py holds `train.lock`), or None when nobody does."""
    lock = cfg.resolved_run_dir() / "train.lock"
    if not lock.is_file():
        return None
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def is_done(items: list[Item], index: int) -> bool:
    item = items[index]
    cfg = item_config(item)
    folder = export_dir(item, cfg)
    if folder is not None:
        return exported_fingerprint(folder) == cfg.fingerprint()
    meta = last_checkpoint(cfg)
    if meta is not None and meta["epoch"] + 1 == cfg.epochs and meta["fingerprint"] == cfg.fingerprint():
        return True
    return index + 1 < len(items) and is_done(items, index + 1)


def progress(cfg: TrainConfig) -> str:
    """'epoch 57/200, 48.2 s/epoch, ETA 1.9 h' from the newest checkpoints (train time, evaluation excluded). The rate
    is that of the epochs between the two newest, what the machine gives the run now: the mean over the whole run
    also counts epochs that shared the machine with other work or ran on another one. One checkpoint: its mean."""
    metas = checkpoint_metas(cfg)
    if not metas:
        return f"epoch 0/{cfg.epochs}, no checkpoint yet"
    done = metas[0]["epoch"] + 1
    if len(metas) > 1 and metas[0]["epoch"] > metas[1]["epoch"]:
        per_epoch = (metas[0]["elapsed_s"] - metas[1]["elapsed_s"]) / (metas[0]["epoch"] - metas[1]["epoch"])
    else:
        per_epoch = metas[0]["elapsed_s"] / done
    return (f"epoch {done}/{cfg.epochs}, {per_epoch:.1f} s/epoch, "
            f"ETA {(cfg.epochs - done) * per_epoch / 3600:.1f} h")


def failures() -> dict[str, str]:
    """Lines the running (or last) queue gave up on, with why: a queue restart retries them."""
    path = STATE_DIR / "queue_failed.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def status_lines(items: list[Item]) -> list[str]:
    failed = failures()
    lines = []
    for i, item in enumerate(items):
        try:
            cfg = item_config(item)
        except ConfigError as e:
            lines.append(f"invalid  {item.line}: {e}")
            continue
        holder = lock_holder(cfg)
        if holder is not None:
            state = f"running  {item.line} [{progress(cfg)}; pid {holder}]"
        elif is_done(items, i):
            folder = export_dir(item, cfg)
            state = f"done     {item.line}" + (f" -> {folder.relative_to(ROOT)}" if folder else "")
        elif item.line in failed:
            state = f"failed   {item.line} [{failed[item.line]}; {progress(cfg)}]"
        elif last_checkpoint(cfg) is not None:
            state = f"paused   {item.line} [{progress(cfg)}]"
        else:
            state = f"waiting  {item.line}"
        lines.append(state)
    return lines


def runner_lock() -> object | None:
    """Hold the queue's single-runner lock; None if another runner holds it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    handle = open(STATE_DIR / "queue.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def runner_pid() -> int | None:
    handle = runner_lock()
    if handle is not None:
        handle.close()
        return None
    return int((STATE_DIR / "queue.lock").read_text().strip() or 0) or None


def log(message: str) -> None:
    print(f"=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", flush=True)


def run_queue(threads: int) -> None:
    """Train every waiting line in order; a line that fails is skipped until the next `start`."""
    lock = runner_lock()
    if lock is None:
        raise SystemExit(f"error: a queue is already running (pid {runner_pid()}); `train_queue.py stop` stops it")
    failed: dict[str, str] = {}
    (STATE_DIR / "queue_failed.json").write_text("{}")
    in_a_row = 0
    while True:
        items = read_queue()
        pending = [(i, it) for i, it in enumerate(items) if it.line not in failed and not is_done(items, i)]
        if not pending:
            log("queue done")
            return
        _, item = pending[0]
        holder = lock_holder(item_config(item))
        if holder is not None:  # trained by a process outside this queue: wait for it
            log(f"waiting for pid {holder}, training {item.line}")
            time.sleep(POLL_SECONDS)
            continue
        log(item.line)
        command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--num_processes", "1",
                   "--num_machines", "1", "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(threads),
                   "training/train.py", "--config", *item.args, "--resume", "auto"]
        rc = subprocess.call(command, cwd=ROOT)
        items = read_queue()
        if rc != 0 or item not in items or not is_done(items, items.index(item)):
            failed[item.line] = f"exit {rc} at {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}"
            (STATE_DIR / "queue_failed.json").write_text(json.dumps(failed, indent=1))
            log(f"FAILED ({failed[item.line]}) {item.line}")
            in_a_row += 1
            if in_a_row == MAX_FAILURES_IN_A_ROW:
                log(f"stopping: {in_a_row} runs failed in a row; fix the cause (log above), then start again")
                return
        else:
            in_a_row = 0


def start(threads: int) -> None:
    pid = runner_pid()
    if pid is not None:
        print(f"the queue is already running (pid {pid}); `python training/train_queue.py status` shows it")
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log_file = open(STATE_DIR / "queue.log", "a")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "run", "--threads", str(threads)],
                            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: `stop` ends the queue and its run
    print(f"queue started (pid {proc.pid}); log {STATE_DIR / 'queue.log'}")


def stop() -> None:
    pid = runner_pid()
    if pid is None:
        print("the queue is not running")
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        os.kill(pid, signal.SIGTERM)
    print(f"stopped the queue (process group {pid}); `start` resumes its run from the last checkpoint")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("status", "start", "stop", "run"))
    p.add_argument("--threads", type=int, default=int(os.environ.get("LTZOO_THREADS", os.cpu_count() or 1)),
                   help="CPU threads per run (default: LTZOO_THREADS, else all cores)")
    args = p.parse_args(argv)
    if args.command == "status":
        print("\n".join(status_lines(read_queue())))
        pid = runner_pid()
        print(f"queue: running (pid {pid})" if pid else "queue: not running (`python training/train_queue.py start`)")
    elif args.command == "start":
        start(args.threads)
    elif args.command == "stop":
        stop()
    else:
        run_queue(args.threads)


if __name__ == "__main__":
    main()
